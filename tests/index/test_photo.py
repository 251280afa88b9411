"""Photo metadata read from real JPEG / PNG files written with Pillow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from mmsim.index.photo import PHOTO_FIELDS, read_photo_metadata

EXIF_IFD = 0x8769
GPS_IFD = 0x8825


def _jpeg(
    path: Path,
    size: tuple[int, int] = (40, 20),
    ifd0: dict[int, object] | None = None,
    sub: dict[int, object] | None = None,
    gps: dict[int, object] | None = None,
) -> Path:
    exif = Image.Exif()
    for tag, value in (ifd0 or {}).items():
        exif[tag] = value
    if sub:
        exif.get_ifd(EXIF_IFD).update(sub)
    if gps:
        exif.get_ifd(GPS_IFD).update(gps)
    Image.new("RGB", size, "red").save(path, exif=exif)
    return path


FULL_IFD0 = {0x010F: "Canon\x00", 0x0110: " EOS 5D ", 0x0112: 1, 0x0132: "2020:01:01 00:00:00"}
FULL_SUB = {0x9003: "2023:07:14 10:22:05", 0x9004: "2023:07:15 11:00:00"}
FULL_GPS = {
    1: "S",
    2: (33.0, 51.0, 54.0),
    3: "W",
    4: (151.0, 12.0, 36.0),
}


def test_full_exif(tmp_path: Path) -> None:
    path = _jpeg(tmp_path / "a.jpg", ifd0=FULL_IFD0, sub=FULL_SUB, gps=FULL_GPS)
    assert read_photo_metadata(path) == {
        "taken": "2023-07-14 10:22:05",
        "camera_make": "Canon",
        "camera_model": "EOS 5D",
        "latitude": -33.865,
        "longitude": -151.21,
        "orientation": 1,
        "width": 40,
        "height": 20,
    }
    assert set(read_photo_metadata(str(path))) == set(PHOTO_FIELDS)


def test_orientation_6_swaps_size(tmp_path: Path) -> None:
    path = _jpeg(tmp_path / "r.jpg", ifd0={0x0112: 6})
    assert read_photo_metadata(path) == {"orientation": 6, "width": 20, "height": 40}


def test_orientation_out_of_range_is_absent(tmp_path: Path) -> None:
    path = _jpeg(tmp_path / "o.jpg", ifd0={0x0112: 9})
    assert read_photo_metadata(path) == {"width": 40, "height": 20}


def test_taken_falls_back_to_datetime(tmp_path: Path) -> None:
    path = _jpeg(tmp_path / "d.jpg", ifd0={0x0132: "2021:12:31 23:59:58\x00"})
    assert read_photo_metadata(path)["taken"] == "2021-12-31 23:59:58"


def test_taken_accepts_fraction_and_digitized(tmp_path: Path) -> None:
    path = _jpeg(tmp_path / "f.jpg", sub={0x9004: "2022:02:03 04:05:06.789 "})
    assert read_photo_metadata(path)["taken"] == "2022-02-03 04:05:06"


def test_jpeg_without_exif(tmp_path: Path) -> None:
    path = tmp_path / "plain.jpg"
    Image.new("RGB", (30, 10)).save(path)
    assert read_photo_metadata(path) == {"width": 30, "height": 10}


def test_png_size(tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    Image.new("RGBA", (7, 9)).save(path)
    assert read_photo_metadata(path) == {"width": 7, "height": 9}


def test_bad_date_and_gps_absent_others_survive(tmp_path: Path) -> None:
    path = _jpeg(
        tmp_path / "bad.jpg",
        ifd0={0x010F: "Nikon", 0x0110: "D850", 0x0132: "garbage"},
        sub={0x9003: "0000:00:00 00:00:00"},
        gps={1: "N", 2: (95.0, 0.0, 0.0), 3: "E", 4: (200.0, 0.0, 0.0)},
    )
    assert read_photo_metadata(path) == {
        "camera_make": "Nikon",
        "camera_model": "D850",
        "width": 40,
        "height": 20,
    }


def test_empty_strings_and_malformed_gps_absent(tmp_path: Path) -> None:
    path = _jpeg(
        tmp_path / "e.jpg",
        ifd0={0x010F: "\x00\x00", 0x0110: "  "},
        gps={1: "N", 2: (10.0, 0.0), 4: (1.0, 2.0, 3.0)},
    )
    assert read_photo_metadata(path) == {"longitude": 1.0341667, "width": 40, "height": 20}


@pytest.mark.parametrize("offset", [0, 4, 8, 12, 20, 40])
def test_corrupted_exif_segment(tmp_path: Path, offset: int) -> None:
    path = _jpeg(tmp_path / "c.jpg", ifd0=FULL_IFD0, sub=FULL_SUB, gps=FULL_GPS)
    data = bytearray(path.read_bytes())
    start = data.index(b"Exif\x00\x00") + 6  # the TIFF header, then IFD0
    data[start + offset : start + offset + 16] = b"\xff\x13" * 8
    path.write_bytes(bytes(data))
    meta = read_photo_metadata(path)
    assert isinstance(meta, dict)
    assert {meta["width"], meta["height"]} == {40, 20}
    assert set(meta) <= set(PHOTO_FIELDS)


def test_not_an_image_and_missing(tmp_path: Path) -> None:
    fake = tmp_path / "notes.jpg"
    fake.write_text("not a picture")
    assert read_photo_metadata(fake) == {}
    assert read_photo_metadata(tmp_path / "missing.jpg") == {}


def _album(folder: Path) -> None:
    """Photos from June to August 2023 (distinct pixels, so none is a renamed copy of
    another), one without EXIF and one whose date is garbage."""
    folder.mkdir(parents=True)
    dates = {
        "jul_a": "2023:07:02 09:00:00",
        "jul_b": "2023:07:20 18:30:00",
        "jul_c": "2023:07:31 23:59:59",
        "jun": "2023:06:30 12:00:00",
        "aug": "2023:08:01 00:00:00",
        "bad_date": "not a date at all",
    }
    for i, (name, date) in enumerate(dates.items()):
        make = "Canon" if name.startswith("jul") else "Nikon"
        path = folder / f"{name}.jpg"
        _jpeg(path, size=(40 + i, 20), ifd0={0x010F: make}, sub={0x9003: date}, gps=FULL_GPS)
    Image.new("RGB", (30, 60), "blue").save(folder / "plain.jpg")


def test_an_index_filters_and_sorts_by_photo_metadata(tmp_path: Path) -> None:
    from mmsim import Matcher
    from mmsim.index import Index

    _album(tmp_path / "album")
    index = Index.build(tmp_path / "album", Matcher("toy"), tmp_path / "idx", progress=False)
    assert len(index) == 7 and not index.last_report.skipped  # odd EXIF is never an error
    july = index.search_page(where="taken >= '2023-07-01' AND taken < '2023-08-01'", top_k=50)
    assert sorted(h["metadata"]["name"] for h in july.hits) == [
        "jul_a.jpg",
        "jul_b.jpg",
        "jul_c.jpg",
    ]
    newest = index.search_page(sort="-taken", top_k=50).hits
    assert [h["metadata"]["name"] for h in newest] == [
        "aug.jpg", "jul_c.jpg", "jul_b.jpg", "jul_a.jpg", "jun.jpg", "bad_date.jpg", "plain.jpg"
    ]  # fmt: skip
    assert [h["metadata"]["name"] for h in newest][-2:] == ["bad_date.jpg", "plain.jpg"]
    assert "taken" not in newest[-1]["metadata"] and newest[-1]["metadata"]["height"] == 60
    first = newest[0]["metadata"]
    assert (first["camera_make"], first["latitude"], first["longitude"]) == (
        "Nikon",
        -33.865,
        -151.21,
    )
    canon = index.search_page("a photo", where={"camera_make": "Canon"}, top_k=50)
    assert canon.total == 3
    assert index.search_page(keywords="nikon", top_k=50).total == 3  # camera names are words too
    with pytest.raises(ValueError, match="no column 'shutter'"):
        index.search_page(sort="shutter")


def test_an_older_index_gains_keywords_and_photo_metadata_on_update(tmp_path: Path) -> None:
    import sqlite3

    from mmsim import Matcher
    from mmsim.index import Index
    from mmsim.retrieval.query import QueryError

    _album(tmp_path / "album")
    Index.build(tmp_path / "album", Matcher("toy"), tmp_path / "idx", progress=False).close()
    with sqlite3.connect(tmp_path / "idx" / "manifest.sqlite") as conn:  # what mmsim 0.x wrote
        (columns,) = conn.execute(
            "SELECT value FROM state WHERE key = 'metadata_columns'"
        ).fetchone()
        for name in set(json.loads(columns)) & set(PHOTO_FIELDS):
            conn.execute(f"ALTER TABLE items DROP COLUMN {name}")
        conn.execute("DROP TABLE items_fts")
        conn.execute("UPDATE state SET value = '1' WHERE key = 'schema_version'")
        conn.execute(
            "UPDATE state SET value = '[\"name\", \"folder\"]' WHERE key = 'metadata_columns'"
        )
        conn.execute("DELETE FROM state WHERE key = 'photo_metadata'")
    old = Index.open(tmp_path / "idx")
    assert old.search_page("a photo").total == 7  # vector search works as before
    with pytest.raises(QueryError, match="mmsim index update"):
        old.search_page(keywords="jul_a")
    report = old.update(progress=False)
    assert report.unchanged == 7 and report.added == report.changed == 0  # nothing re-embedded
    assert old.search_page(keywords="jul_a").hits[0]["metadata"]["name"] == "jul_a.jpg"
    july = old.search_page(where="taken LIKE '2023-07-%'", top_k=50)
    assert july.total == 3 and old.info()["keyword_search"]


def test_a_source_column_named_like_a_photo_field_wins_and_is_followed(tmp_path: Path) -> None:
    import sqlite3

    from mmsim import Matcher
    from mmsim.index import Index

    _album(tmp_path / "album")
    table = tmp_path / "photos.csv"

    def write(width: int) -> None:
        rows = ["image,caption,width,camera_make"]
        rows += [f"album/{n}.jpg,photo {n},{width},Leica" for n in ("jul_a", "jun")]
        table.write_text("\n".join(rows) + "\n")

    write(100)
    index = Index.build(table, Matcher("toy"), tmp_path / "idx", column="image", progress=False)
    first = index.search_page(sort="caption").hits[0]["metadata"]
    assert (first["width"], first["camera_make"], first["height"]) == ("100", "Leica", 20)
    assert first["taken"] == "2023-07-02 09:00:00"  # what the source does not give: the file's
    write(200)
    assert index.update(progress=False).metadata_updated == 2  # the change is seen
    with sqlite3.connect(tmp_path / "idx" / "manifest.sqlite") as conn:  # an older index
        conn.execute("DELETE FROM state WHERE key = 'photo_metadata'")
    index.update(progress=False)  # reads the files again: fills in, never overwrites
    again = index.search_page(sort="caption").hits[0]["metadata"]
    assert (again["width"], again["camera_make"], again["taken"]) == (
        "200",
        "Leica",
        first["taken"],
    )
