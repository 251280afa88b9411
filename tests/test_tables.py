"""Tables of pairs for ``mmsim match`` / ``mmsim calibrate``: CSV and Parquet."""

from __future__ import annotations

import pandas as pd
import pytest
from omegaconf import OmegaConf

from mmsim.cli.tables import read_pairs
from mmsim.tables import read_table


def test_csv_and_parquet_read_the_same(tmp_path):
    frame = pd.DataFrame({"image": ["a.jpg", "b.png"], "text": ["a dog", "a cat"], "label": [1, 0]})
    frame.to_csv(tmp_path / "pairs.csv", index=False)
    frame.to_parquet(tmp_path / "pairs.parquet")
    assert read_table(str(tmp_path / "pairs.csv")) == read_table(str(tmp_path / "pairs.parquet"))
    header, rows = read_table(str(tmp_path / "pairs.parquet"))
    assert header == ["image", "text", "label"] and rows[1] == {
        "image": "b.png",
        "text": "a cat",
        "label": "0",
    }


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
    _, rows = read_pairs(cfg, extra_columns=("label",))
    assert rows[0]["image"] == str(tmp_path / "imgs" / "a.jpg") and rows[0]["text"] == "a dog"
    with pytest.raises(
        KeyError, match=r"'verdict' is not a column .* columns are \['image', 'text', 'label'\]"
    ):
        read_pairs(cfg, extra_columns=("verdict",))
    with pytest.raises(FileNotFoundError, match="table not found"):
        read_table(str(tmp_path / "nope.csv"))
    # without image_root, paths relative to the table's own folder are found there
    (tmp_path / "pairs.csv").write_text("image,text,label\nimgs/a.jpg,a dog,1\n")
    del cfg["image_root"]
    _, rows = read_pairs(cfg)
    assert rows[0]["image"] == str(tmp_path / "imgs" / "a.jpg")
