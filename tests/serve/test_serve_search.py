"""Steered search over HTTP: the real app (ASGI client) over a real, calibrated index of
demo-world scenes; every answer equals what the index itself returns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mmsim import Matcher
from mmsim.index import Index
from mmsim.retrieval.query import Item, Part, Query
from mmsim.serve import ServeConfig, create_app
from mmsim.synthetic.dataset import write_dataset


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> tuple[Index, Path]:
    folder = tmp_path_factory.mktemp("served")
    table = write_dataset(folder / "data", 120, seed=5, split="all", two_object_share=0.3)
    index = Index.build(
        table, Matcher("demo", progress=False), folder / "idx", column="image", progress=False
    )
    index.calibrate(folder / "data" / "pairs.csv", threshold="platt", holdout=0.0)
    return Index.open(folder / "idx"), folder / "data"


@pytest.fixture(scope="module")
def client(scenes):
    config = ServeConfig(max_offset=200)
    with TestClient(create_app(scenes[0].folder, config)) as c:
        yield c


HUGE = 842238333713860429797102490484736


def ids(hits: list[dict]) -> list[int]:
    return [h["response_id"] for h in hits]


def same_page(got: dict, page) -> None:
    want = page.as_dict()
    assert ids(got["hits"]) == ids(want["hits"])
    for key in ("score", "cosine", "p_match"):
        if want["hits"] and key in want["hits"][0]:
            np.testing.assert_allclose(
                [h[key] for h in got["hits"]], [h[key] for h in want["hits"]], atol=1e-5
            )
    for key in ("total", "total_exact", "offset", "next_offset", "as_of", "mode"):
        assert got[key] == want[key], key


def test_compound_hybrid_search_pages_like_the_index(client, scenes):
    index, _ = scenes
    params = {"q": "a red circle", "negative": "a triangle", "mode": "hybrid", "top_k": 5}
    first = client.get("/api/search", params=params).json()
    query = Query(["a red circle"], negative=["a triangle"])
    same_page(first, index.search_page(query, mode="hybrid", top_k=5))
    assert first["query"] == "a red circle" and all("found_by" in h for h in first["hits"])
    assert first["next"].startswith("/api/search?") and "as_of=" in first["next"]
    second = client.get(first["next"]).json()  # the link to the next page of the same ranking
    same_page(second, index.search_page(query, mode="hybrid", top_k=5, offset=5))
    assert not set(ids(first["hits"])) & set(ids(second["hits"]))
    paged = client.get("/api/search", params={**params, "page": 2}).json()
    assert ids(paged["hits"]) == ids(second["hits"])


def test_posted_parts_texts_items_and_embeddings(client, scenes):
    index, _ = scenes
    own = np.random.default_rng(1).standard_normal(index.dim).astype(np.float32)
    body = {
        "positive": [
            {"text": "a green square"},
            {"item": 3, "weight": 0.5},
            {"embedding": own.tolist(), "weight": 0.25},
        ],
        "negative": [{"text": "a small shape"}],
        "top_k": 6,
        "matches_only": False,
    }
    got = client.post("/api/search", json=body).json()
    query = Query(
        ["a green square", Part(Item(3), 0.5), Part(own, 0.25)], negative=["a small shape"]
    )
    same_page(got, index.search_page(query, top_k=6))
    several = client.get("/api/search/similar", params=[("id", 3), ("id", 8), ("top_k", 4)])
    same_page(several.json(), index.search_page(Query([Item(3), Item(8)]), top_k=4))
    linked = client.get("/api/search", params=[("q", "item:3"), ("q", "item:8"), ("top_k", 4)])
    assert ids(linked.json()["hits"]) == ids(several.json()["hits"])


def test_keywords_cutoff_and_browse(client, scenes):
    index, data = scenes
    words = client.get("/api/search", params={"keywords": "all_00005"}).json()
    assert words["mode"] == "keyword" and [Path(h["path"]).name for h in words["hits"]] == [
        "all_00005.png"
    ]
    caption = index.items([5])[5]["metadata"]["caption"]
    matches = client.get("/api/search", params={"q": caption, "matches_only": "true"}).json()
    same_page(matches, index.search_page(caption, matches_only=True))
    assert matches["hits"] and all(h["match"] and h["p_match"] >= 0.5 for h in matches["hits"])
    assert matches["cutoff"]["matches_only"] is True
    plain = client.get("/api/search", params={"q": caption, "top_k": 3}).json()  # micro-batched
    same_page(plain, index.search_page(caption, top_k=3))
    assert "p_match" in plain["hits"][0]  # a calibrated index: every hit says how likely
    browse = client.get("/api/search", params={"sort": "-caption", "top_k": 4}).json()
    assert browse["mode"] == "browse" and browse["total"] == 120
    captions = [h["metadata"]["caption"] for h in browse["hits"]]
    assert captions == sorted(captions, reverse=True)
    image = (data / "all_00010.png").read_bytes()
    found = client.post(
        "/api/search/image",
        files={"file": ("all_00010.png", image)},
        data={"top_k": "3", "negative": ["a circle"], "offset": "3"},
    ).json()
    query = Query([str(data / "all_00010.png")], negative=["a circle"])
    same_page(found, index.search_page(query, top_k=3, offset=3))
    assert found["query"] == "all_00010.png"


@pytest.mark.parametrize(
    ("method", "path", "payload", "status", "words"),
    [
        ("get", "/api/search", {"negative": "people"}, 422, "positive part"),
        ("post", "/api/search", {"positive": [{"text": "x", "weight": 0}]}, 422, "greater than 0"),
        ("post", "/api/search", {"positive": [{"text": "x", "item": 2}]}, 422, "exactly one"),
        ("post", "/api/search", {"positive": [{"item": 99999}]}, 404, "99999"),
        ("post", "/api/search", {"positive": [{"embedding": [1.0, 2.0]}]}, 422, "finite numbers"),
        ("get", "/api/search", {"q": "x", "page": 9, "top_k": 20}, 422, "past the end"),
        (
            "get",
            "/api/search",
            {"q": "x", "offset": 201},
            422,
            "offset: Input should be less than or equal to 200",
        ),
        ("get", "/api/search", {"q": "x", "sort": "nosuch"}, 422, "no column"),
        ("get", "/api/search", {"q": "x", "where": "1; DELETE FROM items"}, 422, "filter"),
        ("get", "/api/search", {"keywords": 'a AND ("', "keyword_syntax": "fts5"}, 422, "FTS5"),
        ("get", "/api/search", {"keywords": '" * ^'}, 422, "no letters"),
        ("get", "/api/search", {"q": "x" * 10_000}, 413, "max_query_chars"),
        ("get", "/api/search", {"q": "x", "mode": "semantic"}, 422, "mode"),
        ("get", "/api/search", {"q": "x", "min_probability": 2}, 422, "less than or equal to 1"),
        ("get", "/api/search", {"q": "x", "as_of": 10**9}, 422, "not made yet"),
        ("get", "/api/search/similar", {"id": 99999}, 404, "99999"),
        ("get", f"/api/items/{HUGE}", {}, 404, str(HUGE)),  # beyond 64 bits: no row has it
        ("get", f"/api/items/{HUGE}/thumbnail", {}, 404, str(HUGE)),
        ("get", "/api/search/similar", {"id": HUGE}, 404, str(HUGE)),
        ("post", "/api/search", {"positive": [{"item": HUGE}]}, 404, str(HUGE)),
    ],
)
def test_bad_searches_answer_4xx_and_leave_the_service_working(
    client, scenes, method, path, payload, status, words
):
    response = (
        client.get(path, params=payload) if method == "get" else client.post(path, json=payload)
    )
    assert response.status_code == status, response.text
    assert words in response.json()["error"], response.json()
    plain = client.get("/api/search", params={"keywords": 'NEAR " * OR column:', "top_k": 2})
    assert plain.status_code == 200  # FTS5 syntax in plain words: searched for literally
    assert client.get("/api/search", params={"q": "a red circle"}).status_code == 200
    assert scenes[0].info()["items"] == 120


def test_a_text_part_is_never_read_as_a_file_of_the_server(client, scenes):
    index, data = scenes
    path = str(data / "all_00010.png")  # exists on the server, and looks like an image
    got = client.get("/api/search", params={"q": path, "negative": "a circle", "top_k": 5})
    query = Query([path], negative=["a circle"])
    same_page(got.json(), index.search_page(query, modality="text", top_k=5))
    as_image = index.search_page(query, top_k=5)  # what reading the file would give
    assert ids(as_image.hits) != ids(got.json()["hits"])
    # the file read as the query image finds itself (near the top: the negative part
    # "a circle" may lift a near-duplicate scene above it)
    assert path in [hit["path"] for hit in as_image.hits]


def test_a_wrong_method_says_which_ones_are_allowed(client):
    response = client.delete("/api/search")
    assert response.status_code == 405 and response.json()["status"] == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}


def test_every_search_route_declares_the_same_ranges_as_the_json_body(client):
    """One source of the search options' ranges: GET, form and JSON routes agree (a
    route that declared a wider range than the body would answer 500 on its edge)."""
    doc = client.get("/openapi.json").json()
    keywords = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")

    def ranged(schema: dict) -> dict:
        typed = next((s for s in schema.get("anyOf", []) if s.get("type") != "null"), schema)
        # as floats: FastAPI's document model writes the JSON body's bounds as floats
        return {k: float(typed[k]) for k in keywords if k in typed}

    body = doc["components"]["schemas"]["SearchBody"]["properties"]
    form_ref = doc["paths"]["/api/search/image"]["post"]["requestBody"]["content"]
    form_name = form_ref["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[1]
    routes = {
        "GET /api/search": {
            p["name"]: p["schema"] for p in doc["paths"]["/api/search"]["get"]["parameters"]
        },
        "GET /api/search/similar": {
            p["name"]: p["schema"] for p in doc["paths"]["/api/search/similar"]["get"]["parameters"]
        },
        "POST /api/search/image": doc["components"]["schemas"][form_name]["properties"],
    }
    checked = 0
    for route, params in routes.items():
        for name, schema in params.items():
            if name in body and ranged(body[name]):
                assert ranged(schema) == ranged(body[name]), (route, name)
                checked += 1
    assert checked == 17  # top_k, offset, page, as_of, min_* per route; rrf_k, window
    past = client.get("/api/search", params={"q": "x", "as_of": 2**63})
    assert past.status_code == 422 and "as_of" in past.json()["error"]
