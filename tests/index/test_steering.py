"""Steered search through a real index on disk: compound queries, keyword and hybrid
search, a calibrated cutoff, paging and sorting, and their errors."""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmsim import Matcher
from mmsim.errors import shorten
from mmsim.index import Index
from mmsim.plugin.testing import MMSIM, cli_env, run_cli, write_images
from mmsim.retrieval.query import Item, MissingItemError, Part, Query, QueryError
from mmsim.synthetic.dataset import write_dataset


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> tuple[Index, Path]:
    """An index of 240 demo-world scenes (the demo encoder: real meaning), with their
    captions as metadata, and the folder holding captions.csv and pairs.csv."""
    folder = tmp_path_factory.mktemp("scenes")
    table = write_dataset(folder / "data", 240, seed=11, split="all", two_object_share=0.3)
    index = Index.build(
        table, Matcher("demo", progress=False), folder / "idx", column="image", progress=False
    )
    return index, folder / "data"


def exact_ranking(index: Index, vector: np.ndarray) -> list[tuple[int, float]]:
    """Every item by cosine with ``vector`` (ties by lower id), from the stored vectors."""
    ids = index.ids()
    scores = index.vectors(ids) @ vector
    order = np.lexsort((ids, -scores))
    return [(int(ids[i]), float(scores[i])) for i in order]


def unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def test_compound_query_is_the_weighted_sum_of_extract_embedding_results(scenes):
    index, data = scenes
    matcher = index.matcher
    image = str(data / "all_00003.png")
    own = np.random.default_rng(0).standard_normal(index.dim).astype(np.float32) * 3
    query = Query(
        positive=["a red circle", Part("a large shape", 0.5), Part(image, 2.0), Item(7), own],
        negative=[Part("a blue square", 1.5)],
    )
    texts = matcher.extract_embedding(
        ["a red circle", "a large shape", "a blue square"], modality="text"
    )
    picture = matcher.extract_embedding([image], modality="image")[0]
    want = unit(
        unit(texts[0])
        + 0.5 * unit(texts[1])
        + 2.0 * unit(picture)
        + unit(index.vectors([7])[0])
        + unit(own)
        - 1.5 * unit(texts[2])
    )
    expected = exact_ranking(index, want)[:10]
    page = index.search_page(query, top_k=10, exact=True)
    assert [h["response_id"] for h in page.hits] == [i for i, _ in expected]
    np.testing.assert_allclose([h["score"] for h in page.hits], [s for _, s in expected], atol=1e-5)
    assert index.search(query, top_k=10)[0] == page.hits  # the list API takes queries too
    rows = index.vectors([4, 9])  # a batch of embeddings, steered: one search per row
    both = index.search(rows, top_k=3, mode="vector", offset=1)
    assert [[h["response_id"] for h in hits] for hits in both] == [
        [i for i, _ in exact_ranking(index, row)[1:4]] for row in rows
    ]
    assert page.query == "a red circle + a large shape^0.5 + " + f"{shorten(image, 60)}^2" + (
        f" + item 7 + embedding[{index.dim}] - a blue square^1.5"
    )
    assert shorten(image, 60).endswith(Path(image).name)  # a long path keeps its file name
    # "item:ID" is the same part as Item(ID): "more like these"
    like = index.search_page(Query(["item:3", "item:9"]), top_k=5, exact=True)
    both = unit(unit(index.vectors([3])[0]) + unit(index.vectors([9])[0]))
    # 3 and 9 tie (the mean of two unit vectors is as close to each) up to float
    # rounding, which differs between the search's query vector and this one: each
    # ranking is checked against its own scores (ties by lower id), and the two agree
    # to 1e-6 on every score and on the order of everything else
    expected = dict(exact_ranking(index, both)[:5])
    ids = [h["response_id"] for h in like.hits]
    score = {h["response_id"]: h["score"] for h in like.hits}
    assert ids == sorted(ids, key=lambda i: (-score[i], i))
    assert set(ids[:2]) == {3, 9} and abs(score[3] - score[9]) < 1e-6
    assert ids[2:] == list(expected)[2:]
    np.testing.assert_allclose([score[i] for i in ids], [expected[i] for i in ids], atol=1e-6)


def test_a_negative_part_removes_the_unwanted_kind(scenes):
    index, _ = scenes
    dropped = []
    for colour in ("red", "green", "blue", "yellow"):
        shape = f"a {colour} shape"
        plain = index.search_page(shape, top_k=10).hits
        steered = index.search_page(Query([shape], negative=["a triangle"]), top_k=10).hits
        count = lambda hits: sum("triangle" in h["metadata"]["caption"] for h in hits)  # noqa: E731
        dropped.append((count(plain), count(steered)))
    assert sum(s for _, s in dropped) < sum(p for p, _ in dropped), dropped
    assert all(s <= p for p, s in dropped), dropped


def test_keyword_search_reads_captions_file_names_and_metadata(scenes):
    index, _ = scenes
    page = index.search_page(keywords="all_00042")  # a file name
    assert [Path(h["path"]).name for h in page.hits] == ["all_00042.png"]
    assert page.mode == "keyword" and page.total == 1 and page.hits[0]["keyword_score"] > 0
    caption = page.hits[0]["metadata"]["caption"]
    words = [w for w in caption.split() if w not in ("a", "an", "the")]
    found = index.search_page(keywords=" ".join(words), top_k=500)
    assert found.total == len(found.hits) > 0
    for hit in found.hits:  # every word of the keywords is in the item's text fields
        assert all(w in hit["metadata"]["caption"] + hit["metadata"]["negative"] for w in words)
    # FTS5 syntax in plain text is searched for literally: no error, no operator
    for text in [
        'red "circle',
        "red*",
        "red NEAR circle",
        "red OR blue",
        "caption: red",
        "x" * 900,
    ]:
        index.search_page(keywords=text)
    either = index.search_page(keywords="crimson OR circle")  # OR is a word here
    assert either.total == 0
    assert index.search_page(keywords="circle OR square", keyword_syntax="fts5").total > 0
    with pytest.raises(QueryError, match="not a valid FTS5 query"):
        index.search_page(keywords='circle AND (square OR "', keyword_syntax="fts5")
    with pytest.raises(QueryError, match="no letters or digits"):
        index.search_page(keywords='" * ^')


def test_hybrid_fuses_the_two_rankings_by_reciprocal_rank(scenes):
    index, _ = scenes
    text, window, k = "a red circle", 30, 60.0
    vector = index.search_page(text, top_k=window, exact=True).hits
    keyword = index.search_page(keywords=text, top_k=window).hits
    fused: dict[int, float] = {}
    for ranking, weight in ((vector, 1.0), (keyword, 2.0)):
        for rank, hit in enumerate(ranking, 1):
            fused[hit["response_id"]] = fused.get(hit["response_id"], 0.0) + weight / (k + rank)
    vector_rank = {h["response_id"]: r for r, h in enumerate(vector, 1)}
    keyword_rank = {h["response_id"]: r for r, h in enumerate(keyword, 1)}
    inf = float("inf")
    tie = lambda i: (keyword_rank.get(i, inf), vector_rank.get(i, inf), i)  # noqa: E731
    expected = sorted(fused.items(), key=lambda pair: (-pair[1], tie(pair[0])))[:12]
    page = index.search_page(
        text, mode="hybrid", top_k=12, window=window, exact=True,
        fusion_weights={"vector": 1.0, "keyword": 2.0},
    )  # fmt: skip
    assert [(h["response_id"], pytest.approx(h["score"])) for h in page.hits] == expected
    query_vector = index.matcher.extract_embedding([text], modality="text")[0]
    for hit in page.hits:
        i = hit["response_id"]
        want = {n: r[i] for n, r in (("vector", vector_rank), ("keyword", keyword_rank)) if i in r}
        assert hit["found_by"] == want
        assert hit["cosine"] == pytest.approx(float(index.vectors([i])[0] @ query_vector), abs=1e-5)
        assert ("keyword_score" in hit) == (i in keyword_rank)
    assert page.total == len(index) and page.total_exact
    only_words = index.search_page(
        text, mode="hybrid", top_k=10, fusion_weights={"vector": 0, "keyword": 1}
    )
    assert [h["response_id"] for h in only_words.hits] == [h["response_id"] for h in keyword[:10]]


def test_cutoff_is_the_saved_calibrated_threshold(scenes, tmp_path):
    index, data = scenes
    with pytest.raises(QueryError, match="no calibrated threshold"):
        index.search_page("a red circle", matches_only=True)
    assert "p_match" not in index.search_page("a red circle").hits[0]
    server = Index.open(index.folder)  # another reader, its model already loaded
    server.search_page("a red circle")
    index.calibrate(data / "pairs.csv", threshold="best_f1", holdout=0.0)
    caption = index.items([5])[5]["metadata"]["caption"]
    assert server.search_page(caption, matches_only=True).hits[0]["match"]  # it sees it
    reopened = Index.open(index.folder)  # what another process sees: it was saved
    assert reopened.info()["threshold"] == {"name": "best_f1", "calibrated": True}
    matcher = reopened.matcher
    threshold = matcher.threshold.threshold
    query = reopened.items([5])[5]["metadata"]["caption"]  # a caption like the calibration's
    everything = exact_ranking(reopened, matcher.extract_embedding([query], modality="text")[0])
    page = reopened.search_page(query, matches_only=True, top_k=500)
    assert page.total == len(page.hits) == sum(s >= threshold for _, s in everything) > 0
    assert [h["response_id"] for h in page.hits] == [i for i, s in everything if s >= threshold]
    assert all(h["match"] and h["score"] >= threshold for h in page.hits)
    # P(match) of a hit is what the matcher says of that (image, caption) pair
    some = page.hits[:5] + reopened.search_page(query, top_k=5, offset=page.total).hits
    pairs = {"image": [h["path"] for h in some], "caption": [query] * len(some)}
    np.testing.assert_allclose(
        [h["p_match"] for h in some], matcher.predict_proba(pairs)[:, 1], atol=1e-5
    )
    assert [h["match"] for h in some] == [bool(d) for d in matcher.predict(pairs)]
    likely = reopened.search_page(query, min_probability=0.9, top_k=500)
    assert all(h["p_match"] >= 0.9 for h in likely.hits)
    assert likely.total == sum(p >= 0.9 for p in [h["p_match"] for h in page.hits])
    above = reopened.search_page(query, min_score=0.25, top_k=500, mode="hybrid")
    assert {h["response_id"] for h in above.hits} <= {i for i, s in everything if s >= 0.25}
    assert all(h["cosine"] >= 0.25 for h in above.hits)
    sorted_matches = reopened.search_page(query, matches_only=True, sort="-caption", top_k=500)
    captions = [h["metadata"]["caption"] for h in sorted_matches.hits]
    assert captions == sorted(captions, reverse=True) and sorted_matches.total == page.total


def test_command_line_calibrates_and_steers(scenes, tmp_path):
    index, data = scenes
    out = run_cli(
        "search", f"index={index.folder}", "query=a green square", "negative=a circle",
        "mode=hybrid", "top_k=4", "page=2", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (result,) = json.loads(out.stdout)
    assert result["mode"] == "hybrid" and result["offset"] == 4 and len(result["hits"]) == 4
    assert result["query"] == "a green square - a circle" and result["next_offset"] == 8
    again = run_cli(
        "search", f"index={index.folder}", "query=a green square", "negative=a circle",
        "mode=hybrid", "top_k=4", "offset=4", f"as_of={result['as_of']}", cwd=tmp_path,
    )  # fmt: skip
    assert json.loads(again.stdout)[0]["hits"] == result["hits"]
    fresh = Index.build(  # an index whose matcher names no pair columns yet
        data / "captions.csv", Matcher("demo", progress=False), tmp_path / "fresh",
        column="image", progress=False,
    )  # fmt: skip
    calibrated = run_cli(
        "index", "calibrate", str(fresh.folder), f"pairs={data / 'pairs.csv'}",
        "threshold=platt", cwd=tmp_path,
    )  # fmt: skip
    assert calibrated.returncode == 0, calibrated.stderr
    assert "calibrated and saved" in calibrated.stdout
    caption = fresh.items([3])[3]["metadata"]["caption"]
    matches = run_cli(
        "search", f"index={fresh.folder}", f"query={caption}", "matches_only=true",
        "top_k=100", cwd=tmp_path,
    )  # fmt: skip
    hits = json.loads(matches.stdout)[0]["hits"]
    assert hits and all(h["match"] and h["p_match"] >= 0.5 for h in hits)
    browse = run_cli(
        "search", f"index={index.folder}", "where=caption LIKE '%green%'", "sort=caption",
        "top_k=3", cwd=tmp_path,
    )  # fmt: skip
    listed = json.loads(browse.stdout)[0]
    assert listed["mode"] == "browse" and listed["total"] > 3
    assert [h["metadata"]["caption"] for h in listed["hits"]] == sorted(
        h["metadata"]["caption"] for h in listed["hits"]
    )
    bad = run_cli("search", f"index={index.folder}", "negative=a circle", cwd=tmp_path)
    assert bad.returncode == 2 and "give query= too" in bad.stderr


def test_bad_queries_are_clear_errors_and_change_nothing(scenes):
    index, data = scenes
    before = index.info()
    (data / "broken.png").write_bytes(b"not a png")
    search = index.search_page
    cases = [
        (lambda: search(Query(negative=["people"])), "at least one positive part"),
        (lambda: search(Query(["x", Part("y", float("inf"))])), "finite"),
        (lambda: search(Query(["x", Item(10**9)])), "item 1000000000 is not in index"),
        (lambda: search(str(data / "broken.png")), "positive[0] (image)"),
        (lambda: search("x", sort="nosuch"), "sort: no column 'nosuch'"),
        (lambda: search("x", sort="caption"), "needs a cutoff"),
        (lambda: search("x", mode="hybrid", sort="caption"), "fused rank"),
        (lambda: search("x", page=99), "past the end"),
        (lambda: search("x", as_of=10**6), "has not made yet"),
        (lambda: search("x", where="1=1; DELETE FROM items"), "not a valid filter"),
        (lambda: search("x", where="caption = 'x' OR (SELECT 1 FROM nosuch)"), "not a valid"),
        (lambda: search("x", where="caption = 'x' OR load_extension('x')"), "not a valid"),
        (lambda: search("x" * 10_000), "10000 characters"),
        (lambda: search(keywords="red", matches_only=True), "cutoffs"),
        (lambda: search(None, min_score=0.2), "cutoffs need a query"),
        (lambda: search("   "), "empty"),
    ]
    for attempt, words in cases:
        with pytest.raises(ValueError) as caught:  # QueryError, or a bad filter
            attempt()
        assert words in str(caught.value), (words, str(caught.value))
    with pytest.raises(MissingItemError):
        index.search_page(Item(10**9))
    after = index.info()
    assert {k: after[k] for k in ("items", "deleted", "shards")} == {
        k: before[k] for k in ("items", "deleted", "shards")
    }


def keyword_rows(folder: Path) -> tuple[set[int], set[int]]:
    """(ids in the keyword table, ids of live items): the same set when in step."""
    with sqlite3.connect(folder / "manifest.sqlite") as conn:
        fts = {r[0] for r in conn.execute("SELECT rowid FROM items_fts")}
        live = {r[0] for r in conn.execute("SELECT id FROM items WHERE deleted = 0")}
    return fts, live


def test_keyword_rows_follow_every_update(tmp_path):
    photos = tmp_path / "photos"
    paths = write_images(photos / "trip", 5)
    deep_folder = photos / "2023" / "07" / "harbour"
    deep_folder.mkdir(parents=True)
    Image.new("RGB", (30, 30), "navy").save(deep_folder / "night.png")
    index = Index.build(photos, Matcher("toy", progress=False), tmp_path / "idx", progress=False)
    deep = index.search_page(keywords="2023", top_k=50).hits  # folders under the root, all
    assert [h["metadata"]["folder"] for h in deep] == ["2023/07/harbour"]
    assert index.search_page(keywords=tmp_path.name).total == 0  # not the folders above it
    (deep_folder / "night.png").unlink()
    names = lambda: sorted(  # noqa: E731
        Path(h["path"]).name for h in index.search_page(keywords="trip", top_k=50).hits
    )
    assert names() == sorted(p.name for p in paths)
    paths[0].rename(photos / "trip" / "sunset_harbour.jpg")  # renamed: same vector, new name
    paths[1].unlink()  # deleted
    write_images(photos / "extra", 1)[0].rename(photos / "trip" / "new_one.jpg")  # added
    report = index.update(progress=False)
    assert (report.renamed, report.deleted, report.added) == (1, 2, 1)
    fts, live = keyword_rows(index.folder)
    assert fts == live and len(live) == 5
    assert (
        index.search_page(keywords="sunset harbour").hits[0]["path"].endswith("sunset_harbour.jpg")
    )
    assert index.search_page(keywords=paths[0].stem).total == 0
    assert index.search_page(keywords=paths[1].stem).total == 0
    assert "new_one.jpg" in names()
    # a table whose metadata changes: the words follow the metadata
    table = tmp_path / "notes.csv"
    rows = [{"text": f"note {i}", "tag": f"alpha{i}"} for i in range(4)]
    write_table(table, rows)
    notes = Index.build(table, Matcher("toy", progress=False), tmp_path / "n", progress=False)
    assert notes.search_page(keywords="alpha2").total == 1
    rows[2]["tag"] = "omega"
    write_table(table, rows[:3])
    notes.update(progress=False)
    assert notes.search_page(keywords="alpha2").total == 0
    assert notes.search_page(keywords="omega").hits[0]["text"] == "note 2"
    assert notes.search_page(keywords="alpha3").total == 0  # its row was deleted
    fts, live = keyword_rows(notes.folder)
    assert fts == live and len(live) == 3


def write_table(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_pages_stay_the_same_while_another_process_commits(tmp_path):
    table = tmp_path / "texts.csv"
    rows = [{"text": f"harbour photo number {i}", "n": str(i)} for i in range(40)]
    write_table(table, rows)
    index = Index.build(table, Matcher("toy", progress=False), tmp_path / "idx", progress=False)
    query = "harbour photo number 7"
    first = index.search_page(query, top_k=10)
    pages = [first] + [
        index.search_page(query, top_k=10, offset=o, as_of=first.as_of) for o in (10, 20, 30)
    ]
    assert pages[-1].next_offset is None and first.next_offset == 10 and first.total == 40
    ids = [h["response_id"] for p in pages for h in p.hits]
    assert sorted(ids) == sorted(index.ids().tolist())  # every item once, none twice
    # another process commits rows that rank above everything (the query's own text)
    write_table(table, rows + [{"text": query, "n": f"copy{i}"} for i in range(5)])
    update = subprocess.run(
        [*MMSIM, "index", "update", str(index.folder)], env=cli_env(), capture_output=True
    )
    assert update.returncode == 0, update.stderr.decode()
    assert len(index) == 45  # this process sees the commit
    for page in pages:
        again = index.search_page(query, top_k=10, offset=page.offset, as_of=first.as_of)
        assert again.hits == page.hits and again.total == 40
    moved = index.search_page(query, top_k=10, offset=10)  # a fresh ranking has shifted
    assert moved.total == 45 and moved.hits != pages[1].hits
    words = dict(keywords="harbour photo", top_k=100)
    assert index.search_page(**words).total == 45
    assert index.search_page(**words, as_of=first.as_of).total == 40
    assert index.search_page(**words, as_of=first.as_of, where="n IN ('3', 'copy1')").total == 1
    assert index.search_page(**words, where="n IN ('3', 'copy1')").total == 2
    browse = [index.search_page(top_k=20, offset=o, as_of=first.as_of) for o in (0, 20)]
    assert [h["response_id"] for b in browse for h in b.hits] == sorted(ids)


def test_an_index_built_with_a_calibrated_matcher_has_its_cutoff(scenes, tmp_path):
    _, data = scenes
    matcher = Matcher("demo", progress=False, query="image", response="caption")
    pairs = {"image": [], "caption": [], "label": []}
    with (data / "pairs.csv").open() as f:
        for row in csv.DictReader(f):
            for key in pairs:
                pairs[key].append(str(data / row[key]) if key == "image" else row[key])
    matcher.calibrate(pairs, threshold="platt")
    table = data / "captions.csv"
    index = Index.build(table, matcher, tmp_path / "idx", column="image", progress=False)
    assert index.info()["threshold"] == {"name": "platt", "calibrated": True}
    caption = index.items([2])[2]["metadata"]["caption"]
    hits = Index.open(tmp_path / "idx").search(caption, top_k=3)[0]
    probabilities = matcher.predict_proba(
        {"image": [h["path"] for h in hits], "caption": [caption] * 3}
    )[:, 1]
    np.testing.assert_allclose([h["p_match"] for h in hits], probabilities, atol=1e-5)


def test_older_index_gains_its_keyword_table_and_open_readers_see_it(tmp_path):
    texts = ["a red car", "a blue boat", "a green tree"]
    Index.build(texts, Matcher("toy", progress=False), tmp_path / "idx", progress=False).close()
    with sqlite3.connect(tmp_path / "idx" / "manifest.sqlite") as conn:  # as mmsim 0.x left it
        conn.execute("DROP TABLE items_fts")
        conn.execute("UPDATE state SET value = '1' WHERE key = 'schema_version'")
    reader = Index.open(tmp_path / "idx")
    with pytest.raises(QueryError, match="mmsim index update"):
        reader.search_page(keywords="boat")
    Index.open(tmp_path / "idx").update(texts, progress=False)  # another process upgrades
    assert [h["text"] for h in reader.search_page(keywords="boat").hits] == ["a blue boat"]
    fts, live = keyword_rows(tmp_path / "idx")
    assert fts == live and len(live) == 3


def test_hybrid_pages_cut_one_ranking_whatever_the_window(tmp_path):
    rng = np.random.default_rng(3)
    words = ["red", "car", "boat", "tree", "blue", "sky", "road", "sea"]
    texts = [" ".join(rng.choice(words, 4)) + f" {i}" for i in range(60)]
    index = Index.build(texts, Matcher("toy", progress=False), tmp_path / "i", progress=False)
    seen, offset = [], 0
    while offset is not None:
        page = index.search_page("red car", mode="hybrid", window=5, top_k=7, offset=offset)
        seen += [h["response_id"] for h in page.hits]
        offset = page.next_offset
    assert sorted(seen) == sorted(index.ids().tolist())  # every item once
    whole = index.search_page("red car", mode="hybrid", window=5, top_k=60).hits
    assert [h["response_id"] for h in whole] == seen


def test_filters_cannot_leave_their_parentheses_and_odd_values_are_named(tmp_path):
    index = Index.build(
        ["secret one", "public two", "public three"], Matcher("toy", progress=False),
        tmp_path / "i", progress=False,
    )  # fmt: skip
    index.update(["public two", "public three"], progress=False)  # "secret one" is deleted
    for where in ("1) OR (1", "text = 'x') OR (1 = 1", "1 = 1 -- ", "1; SELECT 1"):
        with pytest.raises(ValueError, match="not a valid filter"):
            index.search_page(where=where)
    listed = index.search_page(where="text LIKE '%(%' OR 1").hits  # a quoted ( is text
    assert sorted(h["text"] for h in listed) == ["public three", "public two"]
    for kwargs, words in [
        (dict(keywords="public", top_k=2**70), "top_k must be an integer"),
        (dict(where={"text": 2**70}), "not a valid filter"),
        (dict(keywords="public", sort=5), "sort must be a text"),
        (dict(query="public", window=0, mode="hybrid"), "window"),
    ]:
        with pytest.raises(ValueError, match=words):
            index.search_page(**kwargs)
    with pytest.raises(QueryError, match="None"):
        index.search(["public", None], offset=0)
