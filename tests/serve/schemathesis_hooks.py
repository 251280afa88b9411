"""Schemathesis hooks for the contract test (loaded through ``SCHEMATHESIS_HOOKS``).

The OpenAPI document states every rule that JSON Schema can state (types, ranges,
lengths, non-empty texts, enumerations, required fields, one of text/item/embedding).
What it cannot state is what only the index can judge or how parameters combine; the
search routes' descriptions list those rules, and tests/serve/test_serve_search.py
tests each refusal. Here a *positive* case (one the schema calls valid) is made to obey
them, with values valid for the served index, so that ``positive_data_acceptance``
tests what the schema promises; values that already obey them are kept (plain keywords
with words, page 1, offset 0, an ``as_of`` the index has made). Negative cases are sent
as generated.
"""

from __future__ import annotations

import io
import os
from typing import Any

import schemathesis
from PIL import Image

from mmsim.retrieval.keywords import MAX_WORDS, WORD
from mmsim.retrieval.query import MAX_PARTS

# ids the served index holds (the test passes them): positive cases ask for real items
ITEMS = [int(i) for i in os.environ.get("CONTRACT_ITEM_IDS", "1").split(",")]
AS_OF = int(os.environ.get("CONTRACT_AS_OF", "1"))  # a commit the index has made
SEARCHES = {"/api/search", "/api/search/image", "/api/search/similar"}
CUTOFFS = ("matches_only", "min_probability", "min_score")


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), (200, 40, 40)).save(buffer, "PNG")
    return buffer.getvalue()


PNG = _png()


@schemathesis.hook
def map_case(context: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return case
    if isinstance(case.body, dict) and "file" in case.body:  # an upload: a real image
        case.body["file"] = PNG
    path = case.operation.path
    if case.path_parameters and isinstance(case.path_parameters.get("item_id"), int):
        case.path_parameters["item_id"] = _item(case.path_parameters["item_id"])
    if path in SEARCHES:
        form = case.operation.method.upper() == "POST"
        options = case.body if form and isinstance(case.body, dict) else case.query
        if options is not None:
            _obey_search_rules(options, path, json=path == "/api/search" and form)
    return case


def _item(number: int) -> int:
    return ITEMS[number % len(ITEMS)]


def _value(part: Any) -> Any:
    """What a part searches with: a GET's text, a JSON part's text, item or embedding."""
    if isinstance(part, dict):
        return next((part[k] for k in ("text", "item", "embedding") if k in part), None)
    return part


def _words(text: Any) -> bool:
    """Plain keywords the index takes: a word of letters or digits, not too many."""
    return isinstance(text, str) and 0 < len(WORD.findall(text)) <= MAX_WORDS


def _present(options: dict[str, Any], key: str) -> bool:
    value = options.get(key)
    return value is not None and value != [] and value is not False


def _obey_search_rules(options: dict[str, Any], path: str, json: bool) -> None:
    """The rules of a search the schema cannot state (the routes' descriptions)."""
    if json:
        parts = _present(options, "query") or _present(options, "positive")
        weights = options.get("fusion_weights")
        if isinstance(weights, dict) and not weights.get("vector", 1) + weights.get("keyword", 1):
            weights["vector"] = 1.0  # the two weights may not both be zero
    else:
        parts = path != "/api/search" or _present(options, "q")
    if not parts:  # negative parts say what to move away from: they need a positive one
        options.pop("negative", None)
    if isinstance(options.get("id"), list):  # more like items the index holds
        options["id"] = [_item(i) if isinstance(i, int) else i for i in options["id"]]
    positives = [*(options.get("q") or options.get("id") or options.get("positive") or [])]
    positives += [options["query"]] if options.get("query") else []
    if isinstance(options.get("negative"), list):  # parts may not cancel each other out
        taken = [_value(p) for p in positives]
        options["negative"] = [n for n in options["negative"] if _value(n) not in taken]
    if isinstance(options.get("positive"), list) and options.get("query"):  # at most
        del options["positive"][MAX_PARTS - 1 :]  # MAX_PARTS parts in all, the query one
    listed = options.get("q") or options.get("id") or options.get("positive") or []
    positive = len(listed) + (1 if options.get("query") or path == "/api/search/image" else 0)
    if isinstance(options.get("negative"), list):
        del options["negative"][max(0, MAX_PARTS - positive) :]
    fts5 = options.get("keyword_syntax") == "fts5"
    if _present(options, "keywords") and (fts5 or not _words(options["keywords"])):
        options["keywords"] = "scene"  # plain: a word to look for; fts5: its syntax
    if _present(options, "where"):  # an SQL filter over the index's columns
        options["where"] = "modality = 'image'"
    if _present(options, "sort"):  # a column of the index
        options["sort"] = "-id"
    if "as_of" in options:
        options["as_of"] = AS_OF  # a commit this index has made
    if "page" in options:
        options["page"] = 1  # a page within the results (the index has a few dozen)
    if "offset" in options:
        options["offset"] = 0
    mode = options.get("mode")
    if mode in ("vector", "hybrid") and not parts:
        options["mode"] = "keyword" if _present(options, "keywords") else None
    if options.get("mode") in ("keyword", "hybrid") and not _present(options, "keywords"):
        options["keywords"] = "scene"  # (else the query's texts: they may have no words)
    if options.get("mode") == "hybrid":
        options.pop("sort", None)  # hybrid results are in fused order
    searched = parts and options.get("mode") != "keyword"
    if not searched:  # cutoffs apply to a vector similarity
        for key in CUTOFFS:
            options.pop(key, None)
    elif not any(_present(options, key) for key in CUTOFFS):
        options.pop("sort", None)  # sorted vector results need a cutoff
    if options.get("mode") is None:
        options.pop("mode", None)
