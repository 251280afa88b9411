"""The query model without an index: parts and weights, FTS5 quoting, rank fusion."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from mmsim.retrieval.fusion import reciprocal_rank_fusion
from mmsim.retrieval.keywords import match_expression
from mmsim.retrieval.options import SearchOptions
from mmsim.retrieval.query import Item, Part, Query, QueryError, combine


def test_plain_values_become_weighted_parts_and_item_references_items():
    query = Query(positive=["a beach", Part("sunset", 0.5), "item:42"], negative="people")
    assert query.positive == (Part("a beach", 1.0), Part("sunset", 0.5), Part(Item(42), 1.0))
    assert query.negative == (Part("people", 1.0),)
    assert query.texts() == ["a beach", "sunset"]  # what keyword search looks for
    assert query.describe() == "a beach + sunset^0.5 + item 42 - people"
    assert Query.of("a red car") == Query(positive=["a red car"])
    assert Query.of(query) is query


@pytest.mark.parametrize(
    ("positive", "negative", "words"),
    [
        (["x", Part("y", float("inf"))], [], ("positive[1]", "finite")),
        (["x"], [Part("y", 0.0)], ("negative[0]", "greater than 0")),
        (["x"], [Part("y", -1.0)], ("negative[0]", "greater than 0")),
        (["x", Part("y", float("nan"))], [], ("positive[1]", "finite")),
        (["x", Part("y", "2")], [], ("positive[1]", "number")),
        (["  "], [], ("positive[0]", "empty")),
        (["x" * 10_000], [], ("positive[0]", "10000 characters", "2000")),
    ],
)
def test_bad_parts_are_named(positive, negative, words):
    with pytest.raises(QueryError) as caught:
        Query(positive=positive, negative=negative)
    assert all(w in str(caught.value) for w in words), str(caught.value)


def test_combination_is_the_renormalised_weighted_signed_sum():
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((3, 8)).astype(np.float32) * [[1.0], [5.0], [0.2]]
    got = combine(rows, [1.0, 0.5, 2.0], [1, 1, -1])
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    want = unit[0] + 0.5 * unit[1] - 2.0 * unit[2]
    np.testing.assert_allclose(got, want / np.linalg.norm(want), atol=1e-6)
    with pytest.raises(QueryError, match="cancel out"):
        combine(np.stack([rows[0], rows[0]]), [1.0, 1.0], [1, -1])


FTS_SPECIALS = ['"', "*", "NEAR", "OR", "AND", "NOT", "column:", "^start", "(", "a-b", "x'y"]


def _fts(rows: list[str]) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(text, tokenize='unicode61')")
    conn.executemany("INSERT INTO t(rowid, text) VALUES (?, ?)", enumerate(rows, 1))
    return conn


def test_plain_text_is_searched_literally_never_as_fts5_syntax():
    conn = _fts(["photo IMG_2041.jpg of a red car", "near or column", "a red boat", "not and"])

    def found(text: str) -> list[int]:
        return [
            r[0]
            for r in conn.execute(
                "SELECT rowid FROM t WHERE t MATCH ?", (match_expression([text]),)
            )
        ]

    assert found("IMG_2041") == [1]  # a file name is the phrase of its parts
    assert found("the red car of a photo") == [1]  # little words are not required
    assert found("a the of") == []  # ... unless there is nothing else
    assert found("red car") == [1]  # every word must appear
    assert found("NEAR OR column:") == [2]  # operators are words here
    assert found("NOT AND") == [4]
    assert found('"red" * boat') == [3]
    for special in FTS_SPECIALS:  # none of them is a syntax error
        conn.execute("SELECT rowid FROM t WHERE t MATCH ?", (match_expression([f"red {special}"]),))
    assert sorted(
        found_any := [
            r[0]
            for r in conn.execute(
                "SELECT rowid FROM t WHERE t MATCH ?", (match_expression(["red car", "boat"]),)
            )
        ]
    ) == [1, 3], found_any  # several texts are alternatives
    with pytest.raises(QueryError, match="no letters or digits"):
        match_expression(['" * ( ^'])
    with pytest.raises(QueryError, match="limit is 64"):
        match_expression([" ".join(f"w{i}" for i in range(65))])


def test_fts5_syntax_passes_through_when_asked():
    conn = _fts(["a red car", "a red boat", "a blue car"])
    expression = match_expression(["red NOT boat"], syntax="fts5")
    assert [r[0] for r in conn.execute("SELECT rowid FROM t WHERE t MATCH ?", (expression,))] == [1]
    with pytest.raises(QueryError, match="keyword syntax"):
        match_expression(["x"], syntax="lucene")


def test_reciprocal_rank_fusion_by_the_formula():
    fused = reciprocal_rank_fusion({"vector": [1, 2, 3], "keyword": [3, 4]}, {"keyword": 2.0}, k=10)
    scores = {f.id: f.score for f in fused}
    assert scores == pytest.approx({1: 1 / 11, 2: 1 / 12, 3: 1 / 13 + 2 / 11, 4: 2 / 12})
    assert [f.id for f in fused] == [3, 4, 1, 2]
    assert fused[0].ranks == {"vector": 3, "keyword": 1}
    tied = reciprocal_rank_fusion({"a": [5], "b": [4]})
    assert [f.id for f in tied] == [5, 4]  # equal scores: the first ranking's item first
    both = reciprocal_rank_fusion({"a": [5, 7], "b": [7, 5]})
    assert [f.id for f in both] == [5, 7]


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"mode": "semantic"}, "mode must be one of"),
        ({"top_k": 0}, "top_k"),
        ({"offset": -1}, "offset"),
        ({"min_probability": 1.5}, "between 0 and 1"),
        ({"min_score": float("nan")}, "min_score must be a finite"),
        ({"rrf_k": 0}, "rrf_k"),
        ({"fusion_weights": {"vector": 0, "keyword": 0}}, "sum to zero"),
        ({"fusion_weights": {"vector": float("inf")}}, "finite"),
        ({"fusion_weights": {"text": 1}}, "'vector' and 'keyword'"),
        ({"keyword_syntax": "regex"}, "keyword_syntax"),
        ({"as_of": -3}, "as_of"),
    ],
)
def test_bad_options_are_named(options, words):
    with pytest.raises(QueryError, match=words):
        SearchOptions(**options)


def test_page_sets_the_offset():
    assert SearchOptions.create(page=3, top_k=20).offset == 40
    with pytest.raises(QueryError, match="not both"):
        SearchOptions.create(page=2, offset=5)
    assert SearchOptions(sort="-taken").sort_key() == ("taken", True)
    assert SearchOptions(sort="relevance").sort_key() is None
