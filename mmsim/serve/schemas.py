"""The service's request and response types: what ``/openapi.json`` promises.

Responses are pydantic models, so a client generated from the OpenAPI document gets
typed answers. Requests declare what the service checks: lengths, ranges, enumerations,
required and non-empty fields, so a request the document calls valid is one the
service takes, except for what only the index can judge (a filter's SQL, a sort's
column, a commit number, a page past the end, an item id, how parameters combine: see
the routes' descriptions). The limits come from the service's :class:`ServeConfig` and the index
(its embedding dimension), so the request models are built per app by
:func:`request_models`.

A text the service refuses as too long answers 413 and an empty one 422 (the engine's
checks, with their messages): the schema states both as ``maxLength`` and a pattern
that needs one non-space character; numbers and enumerations are checked by pydantic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from mmsim.retrieval.query import MAX_PARTS
from mmsim.serve.config import ServeConfig

# 2: typed requests and responses, declared statuses, /api/health/live and /ready, 507
# from /api/update (see docs/serve.md, "The API")
API_VERSION = "2"

# one character that is not whitespace as Python's str.strip() sees it (the engine's
# test for an empty text), written so that JSON Schema, Python and Rust regexes agree
NON_BLANK = r"[^\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
MODES = Literal["vector", "keyword", "hybrid"]
MAX_COMMIT = 2**63 - 1  # as_of: a commit number is a 64-bit SQLite integer
KEYWORD_SYNTAXES = Literal["plain", "fts5"]
# how frames of one video come back: each frame, neighbouring frames merged, one per video
GROUPS = Literal["frames", "segments", "videos"]
GROUP_HELP = (
    "frames of videos: each frame a hit (the default), `segments` (neighbouring hits of one "
    "video merged, the best frame stands for them) or `videos` (one hit per video, its best "
    "segment); other items pass through unchanged"
)


# -- responses ---------------------------------------------------------------------------
class ErrorBody(BaseModel):
    """Every error: a message that says what to change, and the HTTP status."""

    error: str = Field(description="what is wrong and what to do")
    status: int = Field(description="the HTTP status code, repeated")


class NotReady(ErrorBody):
    """The 503 of the health routes: still loading, or loading failed (for good: a
    client should stop waiting and show ``error``)."""

    state: Literal["loading", "failed"]


class FrameOf(BaseModel):
    """The video a frame item was sampled from, and where in it."""

    key: str = Field(description="the video's key in the source (its relative path)")
    time: float = Field(description="the frame's presentation time, seconds from the start")
    timecode: str = Field(description="the time as hh:mm:ss.mmm")
    frame: int | None = Field(None, description="the frame's number in presentation order")


class Moment(FrameOf):
    """Where a frame hit is in its video (``path``), and for a grouped search
    (``group=segments|videos``) the segment it stands for."""

    start: float | None = Field(None, description="grouped: where the segment starts (s)")
    end: float | None = Field(None, description="grouped: where the segment ends (s)")
    start_timecode: str | None = Field(None, description="grouped: start as hh:mm:ss.mmm")
    end_timecode: str | None = Field(None, description="grouped: end as hh:mm:ss.mmm")
    frames: int | None = Field(None, description="grouped: the sampled frames it spans")


class Hit(BaseModel):
    """One result: an indexed item, how it scored, and what the index holds about it.

    Fields a search does not produce are left out of the JSON (``score`` in a browse,
    ``cosine``/``found_by`` outside hybrid mode, ``p_match``/``match`` on an index
    without a calibrated matcher, ``path`` on a text, ``text`` on an image, ``video``
    on anything but a frame of a video)."""

    response_id: int
    modality: Literal["image", "text"]
    score: float | None = Field(
        None, description="the ranking's score: cosine (vector), BM25 (keyword), fused (hybrid)"
    )
    cosine: float | None = Field(None, description="hybrid mode: the vector cosine")
    keyword_score: float | None = Field(None, description="hybrid mode: BM25, if found by words")
    found_by: dict[str, int] | None = Field(None, description="hybrid mode: rank per ranking")
    p_match: float | None = Field(None, description="calibrated P(match) of query and item")
    match: bool | None = Field(None, description="the calibrated threshold's decision")
    path: str | None = Field(None, description="an image's file or URL; a frame's video file")
    text: str | None = Field(None, description="a text item")
    metadata: dict[str, Any] = Field(default_factory=dict)
    video: Moment | None = Field(None, description="a frame of a video: where it is in it")


class Item(BaseModel):
    """What the index holds about one item."""

    response_id: int
    modality: Literal["image", "text"]
    path: str | None = None
    text: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    video: FrameOf | None = Field(None, description="a frame of a video: which, and where")


class Cutoff(BaseModel):
    """The cutoffs a search applied (the matcher's threshold where it has one)."""

    matches_only: bool
    min_probability: float | None
    min_score: float | None
    threshold: float | None = None


class SearchPage(BaseModel):
    """One page of one ranking; ``next_offset`` and ``as_of`` ask for the next page."""

    query: str | None = Field(description="what was searched for; null in a browse")
    mode: Literal["vector", "keyword", "hybrid", "browse"]
    hits: list[Hit]
    total: int = Field(description="results in all (a lower bound if not total_exact)")
    total_exact: bool
    offset: int
    top_k: int
    next_offset: int | None = Field(description="the next page's offset; null on the last")
    as_of: int = Field(description="the commit searched: pass it back for the next page")
    sort: str | None
    cutoff: Cutoff | None
    group: GROUPS = Field("frames", description="how frames of videos were grouped: `group`")


class LinkedSearchPage(SearchPage):
    """A page answered to a GET, with the link to the next page of the same ranking."""

    next: str | None = Field(description="the URL of the next page; null on the last")


class AnnInfo(BaseModel):
    """The index's ANN structure (``mmsim index optimize``); the metrics read it too."""

    backend: str = Field(description="the ANN library and structure, e.g. faiss_hnsw")
    param: str | None = Field(None, description="the search parameter tuned for recall")
    value: float | int | str | None = Field(None, description="the parameter's tuned value")
    recall_at_10: float | None = Field(None, description="recall@10 measured when tuned")
    count: int = Field(description="rows in the structure")
    target_recall: float | None = None
    tuning_query_source: str | None = None
    rows_searched_exactly: int = Field(
        description="rows added since it was built (searched exactly until the next optimize)"
    )
    built: str | None = Field(None, description="when it was built")
    factory: str = Field(
        description="its faiss index-factory string (e.g. OPQ64,IVF4096,PQ64x8), or the backend"
    )
    memory_bytes: int | None = Field(
        None, description="what opening it reads into memory (on-disk lists left out)"
    )
    disk_bytes: int | None = Field(None, description="its files, memory-mapped lists included")
    memory_budget_bytes: int | None = Field(
        None, description="the budget `optimize memory=` chose it for, if one was given"
    )
    rescore_depth: int = Field(
        1, description="candidates rescored exactly from the shards, per result wanted"
    )
    added_since_training: float = Field(
        description="share of its rows (and of the rows not in it yet) added since it was "
        "trained: `optimize retrain=true` retrains when this grows"
    )


class SkippedItem(BaseModel):
    """An item the index could not embed, and why (retried when its file changes)."""

    key: str = Field(description="the item's key in the source (a relative path, a row)")
    item: str | None = Field(None, description="the item as the source gave it")
    reason: str


class ThresholdInfo(BaseModel):
    """The saved matcher's threshold strategy, and whether it is calibrated."""

    name: str | None
    calibrated: bool


class MatcherInfo(BaseModel):
    similarity: str
    threshold: str
    calibrated: bool


class Info(BaseModel):
    """The index's ``info()`` (counts, model, size, ANN state, skipped items) and the
    matcher's strategies; fields the index adds later come through as they are."""

    model_config = ConfigDict(extra="allow")

    api_version: str = Field(description="this API's version (the OpenAPI document's too)")
    path: str
    items: int
    images: int
    texts: int
    videos: int | None = Field(None, description="video files indexed as frames")
    frames: int | None = Field(
        None, description="sampled frames of videos (image items, not counted in `images`)"
    )
    video: dict[str, Any] | None = Field(
        None, description="how videos are sampled into frames (every, mode, max_frames, ...)"
    )
    deleted: int
    dim: int
    dtype: str
    encoders: dict[str, Any] = Field(description="the towers that built the index (configs)")
    source: dict[str, Any] = Field(description="where the items come from (kind and place)")
    created: str | None = Field(None, description="when the index was built")
    mmsim: str | None = Field(None, description="the mmsim version that built it")
    shards: int
    size_bytes: int
    metadata_columns: list[str]
    keyword_search: bool
    threshold: ThresholdInfo
    skipped: list[SkippedItem]
    ann: AnnInfo | None
    matcher: MatcherInfo


class Health(BaseModel):
    """``/api/health``: answers once the index and the model are loaded."""

    status: Literal["ok"]
    items: int


class Liveness(BaseModel):
    """``/api/health/live``: the process answers (the model may still be loading)."""

    status: Literal["live"]


class Readiness(BaseModel):
    """``/api/health/ready``: the index and the model are loaded; searches answer now."""

    status: Literal["ready"]
    items: int


class MatchVerdict(BaseModel):
    score: float = Field(description="the matcher's similarity of image and caption")
    p_match: float
    match: bool
    threshold: str
    similarity: str


class TextEmbeddings(BaseModel):
    embeddings: list[list[float]]


class ImageEmbedding(BaseModel):
    embedding: list[float]


class UpdateReport(BaseModel):
    summary: str = Field(description="what the update did: added, changed, moved, deleted")
    skipped: list[SkippedItem]


# -- requests ----------------------------------------------------------------------------
def _whole(value: Any) -> Any:
    """15.0 as 15: JSON Schema calls it an integer; strict pydantic would not."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def whole(**constraints: Any) -> Any:
    """An integer in a JSON body within ``constraints``: strict (no "15", no true), but
    15.0 is 15 (the constraints go before the validator, or the schema loses them)."""
    return Annotated[int, Field(**constraints), BeforeValidator(_whole)]


def form_field(kind: Any, **constraints: Any) -> Any:
    """The type of a form field that may be left out: ``kind`` within ``constraints``.
    A form cannot send null, so the schema offers none (FastAPI's ``X | None`` would)."""
    return Annotated[kind, Field(**constraints)] | SkipJsonSchema[None]


@dataclass(frozen=True)
class Limits:
    """What the request models declare: the service's limits and the index's shape."""

    max_query_chars: int
    max_where_chars: int
    max_top_k: int
    max_offset: int
    dim: int

    @classmethod
    def of(cls, config: ServeConfig, dim: int) -> Limits:
        return cls(
            config.max_query_chars,
            config.max_where_chars,
            config.max_top_k,
            config.max_offset,
            dim,
        )

    def text(self, description: str = "") -> dict[str, Any]:
        """Schema keywords of a text the engine takes (non-empty, within the limit)."""
        extra = {"pattern": NON_BLANK, "maxLength": self.max_query_chars}
        return {"description": description, "json_schema_extra": extra}

    def where(self) -> dict[str, Any]:
        return {
            "description": "an SQL filter over the index's columns (folder = 'beach')",
            "json_schema_extra": {"maxLength": self.max_where_chars},
        }

    def sort(self) -> dict[str, Any]:
        """Not a pattern of today's columns: an update can add columns to sort by."""
        return {
            "description": "relevance (the default) or a column of the index (as in "
            "`where`), a leading '-' for descending"
        }

    def bounds(self, name: str) -> dict[str, Any]:
        """The range of the search option ``name``: the one source of the GET, form and
        JSON routes' constraints (declared in the schema and checked by pydantic)."""
        finite = {"allow_inf_nan": False}
        return {
            "top_k": {"ge": 1, "le": self.max_top_k},
            "offset": {"ge": 0, "le": self.max_offset},
            "page": {"ge": 1, "le": self.max_page},
            "as_of": {"ge": 0, "le": MAX_COMMIT},
            "min_probability": {"ge": 0, "le": 1, **finite},
            "min_score": finite,
            "rrf_k": {"gt": 0, **finite},
            "window": {"ge": 1, "le": self.max_window},
        }[name]

    @property
    def max_page(self) -> int:
        return self.max_offset + 1  # page p of top_k 1 starts at offset p - 1

    @property
    def max_window(self) -> int:
        return 10 * self.max_top_k


@dataclass(frozen=True)
class RequestModels:
    """The request bodies of one app: a query part, a search, texts to embed."""

    part: type[BaseModel]
    search: type[BaseModel]
    embed: type[BaseModel]


def request_models(limits: Limits) -> RequestModels:
    """The bodies of ``POST /api/search`` and ``POST /api/embed/text`` for these limits."""
    finite = {"allow_inf_nan": False}  # (an embedding's numbers: the engine checks them)
    bound = limits.bounds

    class PartBody(BaseModel):
        """One part of a compound query: exactly one of a text, an indexed item's id or
        an embedding (the index's dimension), and its weight."""

        model_config = ConfigDict(
            strict=True,
            json_schema_extra={"oneOf": [{"required": [k]} for k in ("text", "item", "embedding")]},
        )

        text: str | SkipJsonSchema[None] = Field(None, **limits.text("a text to search for"))
        item: whole() | SkipJsonSchema[None] = Field(None, description="an indexed item's id")
        embedding: list[float] | SkipJsonSchema[None] = Field(
            None,
            description=f"{limits.dim} numbers: a vector in the index's space",
            json_schema_extra={"minItems": limits.dim, "maxItems": limits.dim},
        )
        weight: float = Field(1.0, gt=0, **finite)

        @model_validator(mode="before")
        @classmethod
        def exactly_one(cls, data: Any) -> Any:
            if isinstance(data, dict):
                named = [k for k in ("text", "item", "embedding") if k in data]
                given = [k for k in named if data[k] is not None]
                if len(named) != 1 or not given:
                    raise ValueError(
                        "needs exactly one of text, item or embedding (not null), got "
                        f"{given or 'none'}"
                    )
            return data

    class FusionWeights(BaseModel):
        model_config = ConfigDict(strict=True, extra="forbid")
        vector: float = Field(1.0, ge=0, **finite)
        keyword: float = Field(1.0, ge=0, **finite)

    class SearchBody(BaseModel):
        """A search: ``query`` (one text) and/or ``positive`` / ``negative`` parts, or
        ``keywords`` alone, or nothing (browse); the options as in ``GET /api/search``."""

        model_config = ConfigDict(strict=True)

        query: str | None = Field(None, **limits.text("one text to search for"))
        positive: list[PartBody] = Field(default_factory=list, max_length=MAX_PARTS)
        negative: list[PartBody] = Field(default_factory=list, max_length=MAX_PARTS)
        keywords: str | None = Field(None, **limits.text("words to find (full-text search)"))
        keyword_syntax: KEYWORD_SYNTAXES = "plain"
        mode: MODES | None = None
        top_k: whole(**bound("top_k")) | None = None
        offset: whole(**bound("offset")) | None = None
        page: whole(**bound("page")) | None = None
        where: str | None = Field(None, **limits.where())
        sort: str | None = Field(None, **limits.sort())
        matches_only: bool = False
        min_probability: float | None = Field(None, **bound("min_probability"))
        min_score: float | None = Field(None, **bound("min_score"))
        as_of: whole(**bound("as_of")) | None = None
        rrf_k: float | None = Field(None, **bound("rrf_k"))
        fusion_weights: FusionWeights | None = None
        window: whole(**bound("window")) | None = None
        group: GROUPS | None = Field(None, description=GROUP_HELP)

    class EmbedBody(BaseModel):
        model_config = ConfigDict(strict=True)

        texts: list[Annotated[str, Field(**limits.text())]] = Field(min_length=1, max_length=256)

    return RequestModels(PartBody, SearchBody, EmbedBody)
