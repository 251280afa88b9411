"""The one table reader: CSV, Parquet and text files, required columns named by option,
relative paths taken from the table's folder or an image root."""

from __future__ import annotations

import pandas as pd
import pytest
from omegaconf import OmegaConf

from mmsim.cli.common import pairs_table
from mmsim.inputs.tables import read_lines, read_table


def test_csv_and_parquet_read_the_same(tmp_path):
    frame = pd.DataFrame({"image": ["a.jpg", "b.png"], "text": ["a dog", "a cat"], "label": [1, 0]})
    frame.to_csv(tmp_path / "pairs.csv", index=False)
    frame.to_parquet(tmp_path / "pairs.parquet")
    csv, parquet = read_table(tmp_path / "pairs.csv"), read_table(tmp_path / "pairs.parquet")
    assert (csv.header, csv.rows) == (parquet.header, parquet.rows)
    assert parquet.header == ["image", "text", "label"] and parquet.rows[1] == {
        "image": "b.png",
        "text": "a cat",
        "label": "0",
    }
    assert parquet.columns(["text"]) == {"text": ["a dog", "a cat"]}


def test_missing_columns_and_image_root(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.jpg").write_bytes(b"x")
    (tmp_path / "pairs.csv").write_text("image,text,label\na.jpg,a dog,1\n")
    cfg = OmegaConf.create(
        {
            "pairs": str(tmp_path / "pairs.csv"),
            "image_root": str(tmp_path / "imgs"),
            "columns": {"query": "image", "response": "text"},
        }
    )
    rows = pairs_table(cfg, extra_columns=("label",)).rows
    assert rows[0]["image"] == str(tmp_path / "imgs" / "a.jpg") and rows[0]["text"] == "a dog"
    with pytest.raises(
        KeyError, match=r"'verdict' is not a column .* columns are \['image', 'text', 'label'\]"
    ):
        pairs_table(cfg, extra_columns=("verdict",))
    with pytest.raises(KeyError, match=r"columns.query='img' is not a column"):
        pairs_table(cfg, columns=("img", "text"))
    with pytest.raises(FileNotFoundError, match="table not found"):
        read_table(tmp_path / "nope.csv")
    # without image_root, paths relative to the table's own folder are found there
    (tmp_path / "pairs.csv").write_text("image,text,label\nimgs/a.jpg,a dog,1\n")
    del cfg["image_root"]
    assert pairs_table(cfg).rows[0]["image"] == str(tmp_path / "imgs" / "a.jpg")


def test_a_text_file_is_one_item_per_line(tmp_path):
    lines = tmp_path / "items.txt"
    lines.write_text("a dog\r\n\n  a cat on a mat \nphotos/x.jpg\n", encoding="utf-8")
    assert read_lines(lines) == ["a dog", "  a cat on a mat ", "photos/x.jpg"]
    table = read_table(lines)
    assert table.header == ["item"] and table.column("item") == read_lines(lines)
    lines.write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(ValueError, match=r"items.txt is not UTF-8 text"):
        read_lines(lines)
