"""Running a steered search over an index: vector, keyword or hybrid; cut, sorted, paged.

One search is one :class:`~mmsim.retrieval.query.Query` and its
:class:`~mmsim.retrieval.options.SearchOptions`:

- **vector**: the query's combined vector against the stored embeddings (the ANN
  structure where there is one); ``score`` is the cosine.
- **keyword**: the FTS5 table; ``score`` is the BM25 relevance (higher is better).
- **hybrid**: both rankings, each to a depth of ``window``, fused by reciprocal rank,
  then the items neither head held in vector order; ``score`` is the fused score, and
  every hit keeps its ``cosine``, its ``keyword_score`` where the keywords found it,
  and ``found_by`` (the rank each ranking gave it).
- **browse**: no query: the items the filter keeps, in ``sort`` order (id by default).

A cutoff (``matches_only``, ``min_probability``: the matcher's calibrated threshold;
``min_score``: a cosine) is applied exactly: the search scans every row for the cosines
that pass, so its ``total`` is exact. Hits of an index whose matcher is calibrated carry
``p_match`` and ``match``. ``as_of`` pins a search to the rows committed up to that
commit, so every page of a query ranks the same rows.

Frame hits (of a video) carry the video's ``path`` and ``video``: its key, the frame's
time (seconds and ``hh:mm:ss.mmm``) and number. ``group="segments"`` / ``"videos"``
pages over moments instead of frames (:mod:`mmsim.index.moments`): the plain ranking
is read deep enough to fill the page and find one group more (``GROUP_DEPTH`` hits at
least, four times deeper each round until it has or the ranking ran out), grouping
stops there; ``total`` counts the groups found: exact when the ranking ran out first,
else one past the page's end (a lower bound, so ``next_offset`` always has a group).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

import mmsim.index.lookups as lookups
from mmsim.index.ann_search import AnnSearch
from mmsim.index.errors import IndexChangedError
from mmsim.index.exact import as_lists, exact_above, exact_search
from mmsim.index.manifest import Manifest
from mmsim.index.moments import Timelines, frame_fields, group_hits
from mmsim.index.snapshot import Snapshot
from mmsim.retrieval.fusion import Fused, reciprocal_rank_fusion
from mmsim.retrieval.keywords import match_expression
from mmsim.retrieval.options import DEFAULT_WINDOW, MAX_RESULTS, SearchOptions
from mmsim.retrieval.query import Item, MissingItemError, Query, QueryError
from mmsim.scoring.similarity import SimilarityStrategy
from mmsim.scoring.thresholds import ThresholdStrategy

Hit = dict[str, Any]
COSINE_GRID = np.linspace(-1.0, 1.0, 20_001)
GRID_STEP = float(COSINE_GRID[1] - COSINE_GRID[0])
_TRIES = 3  # a page read while a writer began (a frozen manifest) is searched again
GROUP_DEPTH = 100  # the fewest frames ranked to fill a page of segments or videos
Embed = Callable[[Query, str | None], np.ndarray]


@dataclass
class SearchPage:
    """One page of a search: its hits, how many results there are in all (``total``,
    exact or a lower bound: ``total_exact``), where the page starts and where the next
    one does (None at the end), the commit the search saw (``as_of``: pass it with
    the next page's request to page over the same rows), and how hits are ``group``ed."""

    query: str
    mode: str
    hits: list[Hit]
    total: int
    total_exact: bool
    offset: int
    top_k: int
    as_of: int
    sort: str | None = None
    cutoff: dict[str, Any] | None = field(default=None)
    group: str = "frames"

    @property
    def next_offset(self) -> int | None:
        end = self.offset + len(self.hits)
        more = end < self.total or (not self.total_exact and len(self.hits) == self.top_k)
        return end if more and self.hits else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "mode": self.mode,
            "total": self.total,
            "total_exact": self.total_exact,
            "offset": self.offset,
            "top_k": self.top_k,
            "next_offset": self.next_offset,
            "as_of": self.as_of,
            "sort": self.sort,
            "cutoff": self.cutoff,
            "group": self.group,
            "hits": self.hits,
        }


@dataclass(frozen=True)
class Cutoff:
    """The matcher's threshold applied to cosines (what the index stores)."""

    similarity: SimilarityStrategy
    threshold: ThresholdStrategy

    def proba(self, cosines: np.ndarray) -> np.ndarray:
        return self.threshold.proba(self.similarity.of_cosines(cosines))

    def decide(self, cosines: np.ndarray) -> np.ndarray:
        return self.threshold.decide(self.similarity.of_cosines(cosines)).astype(bool)


def passes(cosines: np.ndarray, options: SearchOptions, cutoff: Cutoff | None) -> np.ndarray:
    """Which cosines the options' cutoffs keep."""
    keep = np.ones(np.shape(cosines), dtype=bool)
    if options.min_score is not None:
        keep &= cosines >= options.min_score
    if cutoff is not None and options.matches_only:
        keep &= cutoff.decide(cosines)
    if cutoff is not None and options.min_probability is not None:
        keep &= cutoff.proba(cosines) >= options.min_probability
    return keep


def floor_of(options: SearchOptions, cutoff: Cutoff | None) -> float:
    """A cosine below which nothing passes the cutoffs, so the scan keeps only the rows
    from there up and :func:`passes` decides each kept cosine exactly. Found on a fine
    grid of cosines rather than by bisection: a fitted P(match) may fall with the score
    (a Platt fit with a negative slope) or be a step function (isotonic)."""
    ok = passes(COSINE_GRID, options, cutoff)
    if not ok.any():
        return 1.0 + 1e-6  # nothing passes
    return float(COSINE_GRID[int(np.argmax(ok))]) - GRID_STEP


class Searcher:
    """Runs searches for one index; the index hands it what it reads from."""

    def __init__(
        self,
        manifest: Manifest,
        view: Callable[[], Snapshot],
        ann: Callable[[], AnnSearch],
        query_vector: Callable[[Query, str | None], np.ndarray],
        cutoff: Callable[[], Cutoff | None],
        name: str,
    ) -> None:
        self.manifest = manifest
        self.view = view
        self.ann = ann
        self.query_vector = query_vector
        self.cutoff = cutoff
        self.name = name

    def page(self, query: Query | None, options: SearchOptions) -> SearchPage:
        """One page of results; searched again (at most twice) when a writer in another
        process began while a manifest read frozen from a full disk was being read."""
        for attempt in range(_TRIES):
            try:
                if options.group != "frames":
                    return self._grouped(query, options)
                return self._page(query, options)
            except IndexChangedError:
                if attempt == _TRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _page(
        self, query: Query | None, options: SearchOptions, embed: Embed | None = None
    ) -> SearchPage:
        snapshot = self.view()
        as_of = self._as_of(options, snapshot)
        sort = options.sort_key()
        if sort is not None and sort[0] not in self.manifest.columns():
            raise QueryError(
                f"sort: no column '{sort[0]}'; sort by relevance (the default) or one of "
                f"{self.manifest.columns()}, with a leading '-' for descending"
            )
        has_parts = query is not None and bool(query.positive or query.negative)
        keywords = self._keyword_texts(query)
        mode = options.mode or ("vector" if has_parts else "keyword" if keywords else None)
        # the SQL half of a search is restricted to rows up to as_of only when pinned to an
        # earlier commit (a restriction costs a lookup per keyword match)
        pin = as_of if as_of < snapshot.seq else None
        if mode is None:
            return self._browse(options, as_of, pin)
        if mode in ("vector", "hybrid") and not has_parts:
            raise QueryError(
                f"mode={mode} needs a query to embed: give a text, an image or an item "
                "(keywords alone are searched with mode=keyword)"
            )
        if query is not None and query.negative and not query.positive:
            raise QueryError(
                "a query needs at least one positive part: negative parts say what to move "
                "away from, not what to look for"
            )
        if mode in ("keyword", "hybrid") and not keywords:
            raise QueryError(f"mode={mode} needs words to look for: give a text part or keywords=")
        if mode == "keyword" and options.has_cutoff:
            raise QueryError(
                "cutoffs (matches_only, min_probability, min_score) apply to the vector "
                "similarity: use them with mode=vector or mode=hybrid"
            )
        assert query is not None
        match = ""
        if mode in ("keyword", "hybrid"):
            match = match_expression(keywords, options.keyword_syntax)
            self._require_keywords()
        if mode == "keyword":
            return self._keyword(query, match, options, as_of, pin)
        cutoff = self._cutoff(options)
        vector = (embed or self.query_vector)(query, options.modality)
        allowed = self._allowed(snapshot, options, as_of)
        if mode == "vector":
            return self._vector(snapshot, query, vector, options, allowed, as_of, cutoff)
        return self._hybrid(snapshot, query, vector, match, options, allowed, as_of, pin, cutoff)

    # -- modes ---------------------------------------------------------------------------
    def _vector(
        self,
        snapshot: Snapshot,
        query: Query,
        vector: np.ndarray,
        options: SearchOptions,
        allowed: np.ndarray | None,
        as_of: int,
        cutoff: Cutoff | None,
    ) -> SearchPage:
        if options.has_cutoff:
            ids, scores = self._above(snapshot, vector, options, allowed, cutoff)
            if options.sort_key() is not None:
                page_ids, total = lookups.ordered_ids(
                    self.manifest,
                    options.sort_key(),
                    among=ids.tolist(),
                    limit=options.top_k,
                    offset=options.offset,
                )
                by_id = dict(zip(ids.tolist(), scores.tolist(), strict=True))
                pairs = [(i, by_id[i]) for i in page_ids]
            else:
                window = slice(options.offset, options.offset + options.top_k)
                pairs = list(zip(ids[window].tolist(), scores[window].tolist(), strict=True))
                total = int(ids.size)
            hits = self._hits(pairs, cutoff)
            return self._result(query, "vector", hits, total, True, options, as_of, cutoff)
        if options.sort_key() is not None:
            raise _sort_needs_cutoff()
        (page,) = self._vector_pages(
            [query], vector[None], snapshot, options, allowed, as_of, cutoff
        )
        return page

    def vector_pages(self, vectors: np.ndarray, options: SearchOptions) -> list[SearchPage]:
        """Pages of several query vectors searched together (one pass over the shards),
        for options without a cutoff or a sort: what a service's micro-batch needs."""
        plain = options.mode in (None, "vector") and options.sort_key() is None
        if options.has_cutoff or not plain:
            raise QueryError("vector_pages takes plain vector searches: no cutoff, sort or mode")
        if options.group != "frames":  # each query ranked as deep as its groups need
            return [self.page(Query(positive=[v]), options) for v in vectors]
        snapshot = self.view()
        as_of = self._as_of(options, snapshot)
        allowed = self._allowed(snapshot, options, as_of)
        queries = [Query(positive=[v]) for v in vectors]
        return self._vector_pages(
            queries, vectors, snapshot, options, allowed, as_of, self.cutoff()
        )

    def _vector_pages(
        self,
        queries: list[Query],
        vectors: np.ndarray,
        snapshot: Snapshot,
        options: SearchOptions,
        allowed: np.ndarray | None,
        as_of: int,
        cutoff: Cutoff | None,
    ) -> list[SearchPage]:
        ranked = self._ranked(snapshot, vectors, options.offset + options.top_k, options, allowed)
        total = snapshot.count if allowed is None else int(allowed.size)
        return [
            self._result(
                query,
                "vector",
                self._hits(ranked[options.offset :], cutoff),
                total,
                True,
                options,
                as_of,
                cutoff,
            )
            for query, ranked in zip(queries, ranked, strict=True)
        ]

    def _ranked(
        self,
        snapshot: Snapshot,
        vectors: np.ndarray,
        k: int,
        options: SearchOptions,
        allowed: np.ndarray | None,
    ) -> list[list[tuple[int, float]]]:
        """Per query vector, its top ``k`` (id, cosine): the ANN structure where there is
        one (and ``exact`` is not asked), else an exact scan."""
        if snapshot.ann is not None and not options.exact:
            return as_lists(self.ann().search(snapshot, vectors, k, allowed))
        return as_lists(exact_search(snapshot, vectors, k, allowed))

    def _keyword(
        self, query: Query, match: str, options: SearchOptions, as_of: int, pin: int | None
    ) -> SearchPage:
        where = options.where
        with self.manifest.snapshot():  # the hits, the total and as_of: one committed state
            seen = as_of if pin is not None else self.manifest.seq()
            if options.sort_key() is not None:
                ids, total = lookups.ordered_ids(
                    self.manifest,
                    options.sort_key(),
                    match=match,
                    where=where,
                    as_of=pin,
                    limit=options.top_k,
                    offset=options.offset,
                )
                hits: list[Hit] = [{"response_id": i} for i in ids]
            else:
                found = lookups.keyword_search(
                    self.manifest,
                    match,
                    limit=options.top_k,
                    offset=options.offset,
                    where=where,
                    as_of=pin,
                )
                total = lookups.keyword_count(self.manifest, match, where=where, as_of=pin)
                hits = [{"response_id": i, "score": r, "keyword_score": r} for i, r in found]
            hits = self._with_rows(hits)
        return self._result(query, "keyword", hits, total, True, options, seen, None)

    def _hybrid(
        self,
        snapshot: Snapshot,
        query: Query,
        vector: np.ndarray,
        match: str,
        options: SearchOptions,
        allowed: np.ndarray | None,
        as_of: int,
        pin: int | None,
        cutoff: Cutoff | None,
    ) -> SearchPage:
        if options.sort_key() is not None:
            raise QueryError(
                "hybrid results are ordered by their fused rank; sort by a column with "
                "mode=keyword, or with mode=vector and a cutoff"
            )
        # the fusion depth does not depend on the page, so every page cuts one ranking:
        # the fused head, then the items neither ranking's head held, by vector rank
        depth = options.window or DEFAULT_WINDOW
        need = options.offset + options.top_k
        if options.has_cutoff:
            ids, scores = self._above(snapshot, vector, options, allowed, cutoff)
            vector_ranked = list(zip(ids.tolist(), scores.tolist(), strict=True))
            total = int(ids.size)  # a keyword hit that passes the cutoff is among these
        else:
            k = depth if need <= depth else need + depth
            (vector_ranked,) = self._ranked(snapshot, vector[None], k, options, allowed)
            total = snapshot.count if allowed is None else int(allowed.size)
        keyword_ranked = lookups.keyword_search(
            self.manifest, match, limit=depth, where=options.where, as_of=pin
        )
        live = np.isin([i for i, _ in keyword_ranked], snapshot.live.ids)  # not committed since
        keyword_ranked = [pair for pair, ok in zip(keyword_ranked, live, strict=True) if ok]
        cosines = dict(vector_ranked)
        missing = np.array(sorted({i for i, _ in keyword_ranked} - set(cosines)), dtype=np.int64)
        if missing.size:  # found by the keywords only: their exact cosines from the shards
            cosines.update(
                zip(missing.tolist(), (snapshot.vectors(missing) @ vector).tolist(), strict=True)
            )
        if options.has_cutoff:
            kept = passes(np.array([cosines[i] for i, _ in keyword_ranked]), options, cutoff)
            keyword_ranked = [pair for pair, ok in zip(keyword_ranked, kept, strict=True) if ok]
        weights = dict(options.fusion_weights)
        fused = reciprocal_rank_fusion(
            {
                "keyword": [i for i, _ in keyword_ranked],
                "vector": [i for i, _ in vector_ranked[:depth]],
            },
            weights,
            options.rrf_k,
        )
        if need > len(fused):  # the tail: items beyond both heads, in vector order
            seen = {f.id for f in fused}
            weight = weights.get("vector", 1.0)
            fused += [
                Fused(i, weight / (options.rrf_k + rank), {"vector": rank})
                for rank, (i, _) in enumerate(vector_ranked, start=1)
                if rank > depth and i not in seen
            ][: need - len(fused)]
        bm25 = dict(keyword_ranked)
        hits = [
            {
                "response_id": f.id,
                "score": f.score,
                "cosine": float(cosines[f.id]),
                **({"keyword_score": bm25[f.id]} if f.id in bm25 else {}),
                "found_by": f.ranks,
            }
            for f in fused[options.offset : need]
        ]
        self._add_probability(hits, cutoff)
        hits = self._with_rows(hits)
        return self._result(query, "hybrid", hits, total, True, options, as_of, cutoff)

    def _browse(self, options: SearchOptions, as_of: int, pin: int | None) -> SearchPage:
        if options.has_cutoff:
            raise QueryError("cutoffs need a query: give a text, an image or an item")
        with self.manifest.snapshot():  # the hits, the total and as_of: one committed state
            seen = as_of if pin is not None else self.manifest.seq()
            ids, total = lookups.ordered_ids(
                self.manifest,
                options.sort_key(),
                where=options.where,
                as_of=pin,
                limit=options.top_k,
                offset=options.offset,
            )
            hits = self._with_rows([{"response_id": i} for i in ids])
        return self._result(None, "browse", hits, total, True, options, seen, None)

    # -- moments -------------------------------------------------------------------------
    def _grouped(self, query: Query | None, options: SearchOptions) -> SearchPage:
        """A page of segments or videos: the plain ranking (its query embedded once), read
        four times deeper each round until the page's groups are found or it ran out."""
        embedded: list[np.ndarray] = []

        def embed(query: Query, modality: str | None) -> np.ndarray:
            if not embedded:
                embedded.append(self.query_vector(query, modality))
            return embedded[0]

        need = options.offset + options.top_k
        ranking = replace(options, group="frames", offset=0, top_k=min(MAX_RESULTS, 4 * need))
        ranking = replace(ranking, top_k=max(ranking.top_k, GROUP_DEPTH))
        timelines = None
        while True:
            ranked = self._page(query, ranking, embed)
            if timelines is None:  # every round ranks the rows the first one saw
                ranking = replace(ranking, as_of=ranked.as_of)
                timelines = self._timelines(ranking, embedded[0] if embedded else None)
            # one group past the page: proof that a next page has one
            groups = group_hits(ranked.hits, options.group, timelines, need + 1)
            done = ranked.next_offset is None
            if done or len(groups) > need or ranking.top_k >= MAX_RESULTS:
                break
            ranking = replace(ranking, top_k=min(MAX_RESULTS, 4 * ranking.top_k))
        exact = done and len(groups) <= need
        if exact and options.offset and options.offset >= len(groups):
            raise _past_end(options, len(groups))
        return replace(
            ranked,
            hits=groups[options.offset : need],
            total=len(groups),
            total_exact=exact,
            offset=options.offset,
            top_k=options.top_k,
            group=options.group,
        )

    def _timelines(self, options: SearchOptions, vector: np.ndarray | None) -> Timelines:
        """What grouping reads of each video: the frames the search could return (the
        filter, ``as_of``, the cutoff) and their cosines with the query vector."""
        snapshot = self.view()
        allowed = self._allowed(snapshot, options, int(options.as_of or 0))
        usable = snapshot.live.ids if allowed is None else allowed
        if vector is None:
            return Timelines(self.manifest, usable, None)
        cutoff = self.cutoff() if options.cutoff_by_matcher else None
        return Timelines(
            self.manifest,
            usable,
            lambda ids: _cosines(snapshot, ids, vector),
            (lambda s: passes(s, options, cutoff)) if options.has_cutoff else None,
        )

    def segment(self, item_id: int, query: Query | None = None) -> Hit:
        """The segment around one frame, grown as ``group="segments"`` grows a seed, for
        ``query`` (default: the frame itself, so its neighbours that look like it)."""
        snapshot = self.view()
        live = snapshot.live.ids
        at = int(np.searchsorted(live, item_id))
        if at >= live.size or live[at] != item_id:
            raise MissingItemError(f"item {item_id} is not an item of index {self.name}")
        (hit,) = self._with_rows([{"response_id": item_id}])
        if "video" not in hit:
            what = hit.get("path") or hit.get("text", "")
            raise QueryError(
                f"item {item_id} is not a frame of a video (it is the {hit['modality']} "
                f"{what!r}): give the id of a frame, a hit of a search over videos"
            )
        vector = self.query_vector(query or Query(positive=[Item(item_id)]), None)
        timelines = Timelines(
            self.manifest, snapshot.live.ids, lambda ids: _cosines(snapshot, ids, vector)
        )
        hit["score"] = float(_cosines(snapshot, np.array([item_id]), vector)[0])
        (grouped,) = group_hits([hit], "segments", timelines)
        return grouped

    # -- pieces --------------------------------------------------------------------------
    def _above(
        self,
        snapshot: Snapshot,
        vector: np.ndarray,
        options: SearchOptions,
        allowed: np.ndarray | None,
        cutoff: Cutoff | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        ids, scores = exact_above(snapshot, vector, floor_of(options, cutoff), allowed)
        keep = passes(scores, options, cutoff)
        return ids[keep], scores[keep]

    def _hits(self, pairs: list[tuple[int, float]], cutoff: Cutoff | None) -> list[Hit]:
        hits = [{"response_id": i, "score": float(s)} for i, s in pairs]
        self._add_probability(hits, cutoff, key="score")
        return self._with_rows(hits)

    def _add_probability(self, hits: list[Hit], cutoff: Cutoff | None, key: str = "cosine") -> None:
        if cutoff is None or not hits:
            return
        cosines = np.array([h[key] for h in hits], dtype=np.float64)
        for hit, p, ok in zip(hits, cutoff.proba(cosines), cutoff.decide(cosines), strict=True):
            hit["p_match"] = float(p)
            hit["match"] = bool(ok)

    def _with_rows(self, hits: list[Hit]) -> list[Hit]:
        rows = self.manifest.rows([h["response_id"] for h in hits])
        for row in rows.values():
            if "video" in row:
                row["video"] = frame_fields(row["video"])
        return [{**h, **rows[h["response_id"]]} for h in hits if h["response_id"] in rows]

    def _result(
        self,
        query: Query | None,
        mode: str,
        hits: list[Hit],
        total: int,
        exact: bool,
        options: SearchOptions,
        as_of: int,
        cutoff: Cutoff | None,
    ) -> SearchPage:
        if exact and options.offset and options.offset >= total:
            raise _past_end(options, total)
        shown = None
        if options.has_cutoff:
            shown = {
                "matches_only": options.matches_only,
                "min_probability": options.min_probability,
                "min_score": options.min_score,
            }
            if cutoff is not None and cutoff.threshold.threshold is not None:
                shown["threshold"] = cutoff.threshold.threshold
        return SearchPage(
            query.describe() if query is not None else "",
            mode,
            hits,
            total,
            exact,
            options.offset,
            options.top_k,
            as_of,
            options.sort,
            shown,
        )

    def _as_of(self, options: SearchOptions, snapshot: Snapshot) -> int:
        if options.as_of is None:
            return snapshot.seq
        if options.as_of > snapshot.seq:
            raise QueryError(
                f"as_of={options.as_of} is a commit this index has not made yet (its last "
                f"is {snapshot.seq}); pass the as_of a search returned"
            )
        return options.as_of

    def _allowed(self, snapshot: Snapshot, options: SearchOptions, as_of: int) -> np.ndarray | None:
        """Sorted ids a search may return (None: every live row)."""
        allowed = None
        if as_of < snapshot.seq:
            live = snapshot.live
            allowed = live.ids[live.seq <= as_of]
        if options.where is not None:
            chosen = lookups.select_ids(self.manifest, options.where)
            allowed = chosen if allowed is None else np.intersect1d(allowed, chosen)
        return allowed

    def _cutoff(self, options: SearchOptions) -> Cutoff | None:
        cutoff = self.cutoff()
        if options.cutoff_by_matcher and cutoff is None:
            raise QueryError(
                f"index {self.name} has no calibrated threshold, so it cannot tell matches "
                "apart: run `mmsim index calibrate index=... pairs=labelled.csv`, build it "
                "with a calibrated matcher, or cut on the cosine with min_score="
            )
        return cutoff

    def _keyword_texts(self, query: Query | None) -> list[str]:
        if query is None:
            return []
        if query.keywords is not None:
            return [query.keywords] if query.keywords.strip() else []
        return query.texts()

    def _require_keywords(self) -> None:
        if not self.manifest.has_keywords:
            raise QueryError(
                f"index {self.name} was built by an older mmsim and has no keyword table "
                "yet: run `mmsim index update index=...` once to add it"
            )


def _past_end(options: SearchOptions, total: int) -> QueryError:
    return QueryError(
        f"offset {options.offset} is past the end of the results ({total} in all, "
        f"{options.top_k} per page)"
    )


def _cosines(snapshot: Snapshot, ids: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """Cosines of live ``ids`` (any order) with a query vector, in the order given."""
    order = np.argsort(ids)
    out = np.empty(ids.size, dtype=np.float64)
    out[order] = snapshot.vectors(ids[order]) @ vector
    return out


def _sort_needs_cutoff() -> QueryError:
    return QueryError(
        "sorting vector results by a column needs a cutoff (matches_only=true, "
        "min_probability= or min_score=): without one every item is a result; or sort "
        "keyword results (mode=keyword), or browse with no query"
    )
