"""Steered search benchmark: latency of vector, keyword and hybrid search, deep pages,
retrieval quality of the three modes, and what a negative query part does.

    uv run python bench/bench_search.py                          # 1M x 512, 3000 scenes
    uv run python bench/bench_search.py --items 200000 --scenes 1000   # quicker

Part A (latency): an index of ``--items`` clustered 512-d vectors (as in
``bench_index.py``), each item with a generated text: 4-8 words drawn from a
2,000-word vocabulary with a Zipf distribution (some words in half the items, some in
a few hundred), a file-name token ``IMG_0001234`` and, for 1 item in 1,000, a serial
number ``SN-12345-K``. Every search is exact (no ANN). Queries are run interleaved (query
i in every mode, then query i+1), ``--repeats`` times; a query's time is its best over
the repeats, and the table gives the median and p90 over ``--queries`` queries after a
warm-up. Ratios come from this one run against the strongest baseline: a numpy
matrix-vector product and ``argpartition`` over the same vectors held in memory; the
physical limit of an exact scan is memory bandwidth, so the table also gives bytes
scanned / median time.
A mode whose calls raise (say, stopped at the keyword search's time limit) three
times is reported FAILED with the error and not run again.

Part B (quality): an index built with ``Index.build`` over ``--scenes`` generated scenes
(the demo encoder's real image embeddings), each with metadata ``caption``, ``file``
(``IMG_4821.png``) and, for 1 in 4, ``note`` (a serial number ``SN-4471-X``). Two query
types with known relevant items: *word* queries (a file name or a serial number: one
relevant item) and *meaning* queries ("a red circle", "a blue square on the left"),
graded: 2 for a single-shape scene of that colour and shape (and place, when the query
names one), 1 for any other scene showing that colour and shape (e.g. in a two-shape
scene), 0 otherwise. nDCG@10 (gain 2^rel - 1) of vector, keyword and hybrid search;
keyword search looks for the query's words (all must appear, little words like
"a" and "on" aside); a query a mode cannot
run, or that finds nothing, scores 0. Extra rows try the fusion knobs (``rrf_k``,
``fusion_weights``, ``window``); the defaults are what the main rows use.

Part C (negative parts): "a COLOUR shape" versus "a COLOUR shape" minus "a triangle"
over the Part B index, for each of the six colours: the share of the top 10 and top 50
that show a triangle (and that show the colour).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mmsim import Matcher
from mmsim.index import Index, Query

sys.path.insert(0, str(Path(__file__).resolve().parent))
from index_data import clustered, index_of_vectors

VOCABULARY_SIZE = 2000
ZIPF_EXPONENT = 1.0


# -- Part A: latency ------------------------------------------------------------------
def vocabulary(size: int, seed: int = 1) -> list[str]:
    """``size`` distinct pronounceable made-up words (letters only: one FTS5 token each)."""
    rng = np.random.default_rng(seed)
    onsets = [*"bdfgklmnprstvz", "br", "st", "tr", "pl", "kr", "sh"]
    vowels = ["a", "e", "i", "o", "u", "ai", "ou"]
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < size:
        syllables = int(rng.integers(2, 4))
        word = "".join(
            onsets[rng.integers(len(onsets))] + vowels[rng.integers(len(vowels))]
            for _ in range(syllables)
        )
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def item_texts(n: int, words: list[str], seed: int = 2) -> tuple[list[str], list[str]]:
    """Each item's text (Zipf-distributed words, its file name, sometimes a serial
    number) and the serial numbers given out."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, len(words) + 1) ** ZIPF_EXPONENT
    drawn = rng.choice(len(words), size=(n, 8), p=p / p.sum())
    lengths = rng.integers(4, 9, n)
    serial_rows = set(rng.choice(n, size=max(1, n // 1000), replace=False).tolist())
    serials: list[str] = []
    texts = []
    for i in range(n):
        text = " ".join(words[j] for j in drawn[i, : lengths[i]]) + f" IMG_{i:07d}"
        if i in serial_rows:
            serial = f"SN-{rng.integers(10000, 99999)}-{chr(65 + rng.integers(26))}"
            serials.append(serial)
            text += f" {serial}"
        texts.append(text)
    return texts, serials


def keyword_queries(
    count: int, n: int, words: list[str], serials: list[str], seed: int = 3
) -> list[tuple[str, str]]:
    """(kind, keywords): rare words, mid-frequency words (one or two), file names and
    serial numbers, in turn."""
    rng = np.random.default_rng(seed)
    rare = words[len(words) // 2 :]  # ranks 1000-2000
    mid = words[50:200]
    kinds = ["rare word", "mid word", "two mid words", "file name", "serial number"]
    out = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        if kind == "rare word":
            text = rare[rng.integers(len(rare))]
        elif kind == "mid word":
            text = mid[rng.integers(len(mid))]
        elif kind == "two mid words":
            a, b = rng.choice(len(mid), 2, replace=False)
            text = f"{mid[a]} {mid[b]}"
        elif kind == "file name":
            text = f"IMG_{rng.integers(n):07d}"
        else:
            text = serials[rng.integers(len(serials))]
        out.append((kind, text))
    return out


class Timings:
    """Seconds per query of each mode (inf where it raised), and the errors seen."""

    def __init__(self, modes: list[str], queries: int) -> None:
        self.seconds = {name: np.full(queries, np.inf) for name in modes}
        self.errors: dict[str, list[str]] = {name: [] for name in modes}
        self.failed_seconds: dict[str, list[float]] = {name: [] for name in modes}

    def ok(self, name: str) -> bool:
        return bool(np.isfinite(self.seconds[name]).all())


def interleaved(
    modes: dict[str, Callable[[int], Any]],
    queries: int,
    repeats: int,
    warm: int = 3,
    give_up: int = 3,
) -> Timings:
    """Seconds per query of each mode: query i runs in every mode in turn; the best of
    ``repeats`` passes per query. A mode whose call raises ``give_up`` times is not run
    again (its errors are kept for the report)."""
    timings = Timings(list(modes), queries)
    dropped: set[str] = set()

    def call(name: str, i: int) -> float | None:
        start = time.perf_counter()
        try:
            modes[name](i)
        except ValueError as exc:  # QueryError too
            timings.errors[name].append(str(exc))
            timings.failed_seconds[name].append(time.perf_counter() - start)
            if len(timings.errors[name]) >= give_up:
                dropped.add(name)
            return None
        return time.perf_counter() - start

    for i in range(min(warm, queries)):
        for name in modes:
            if name not in dropped:
                call(name, i)
    for _ in range(repeats):
        for i in range(queries):
            for name in modes:
                if name not in dropped and (took := call(name, i)) is not None:
                    timings.seconds[name][i] = min(timings.seconds[name][i], took)
    return timings


def part_a(work: Path, n: int, dim: int, queries: int, repeats: int) -> None:
    started = time.perf_counter()
    corpus, qvecs = clustered(n, dim, queries)
    words = vocabulary(VOCABULARY_SIZE)
    texts, serials = item_texts(n, words)
    made = time.perf_counter() - started
    started = time.perf_counter()
    synthetic = Matcher("toy", encoder_options={"dim": dim}, progress=False)  # vectors given
    index = index_of_vectors(work / "latency_idx", corpus, synthetic, texts=texts)
    built = time.perf_counter() - started
    del texts
    kw = keyword_queries(queries, n, words, serials)
    print(
        f"Part A: {n:,} items x {dim}-d float32 ({n * dim * 4 / 1e9:.2f} GB); data generated "
        f"in {made:.0f} s, indexed with Index.build_from_embeddings (shards, items, FTS rows) in "
        f"{built:.0f} s"
    )
    # sanity: the index's exact scan finds what numpy finds
    page = index.search_page(qvecs[0], top_k=10, exact=True)
    top = np.sort(corpus @ qvecs[0])[::-1][:10]
    assert np.allclose([h["score"] for h in page.hits], top, atol=1e-4), "scores differ"

    def numpy_scan(i: int) -> np.ndarray:
        scores = corpus @ qvecs[i]
        top = np.argpartition(-scores, 10)[:10]
        return top[np.argsort(-scores[top])]

    modes: dict[str, Callable[[int], Any]] = {
        "numpy matmul + argpartition": numpy_scan,
        "vector, exact": lambda i: index.search_page(qvecs[i], top_k=10, exact=True),
        "vector, exact, offset 10000": lambda i: index.search_page(
            qvecs[i], top_k=10, offset=10000, exact=True
        ),
        "keyword": lambda i: index.search_page(keywords=kw[i][1], top_k=10),
        "hybrid, exact": lambda i: index.search_page(
            Query(positive=[qvecs[i]], keywords=kw[i][1]), mode="hybrid", top_k=10, exact=True
        ),
    }
    timings = interleaved(modes, queries, repeats)
    times = timings.seconds
    scanned = n * dim * 4
    med: dict[str, float] = {}
    print()
    print(f"| search over {n:,} items | median ms | p90 ms | scan GB/s |")
    print("| --- | ---: | ---: | ---: |")
    for name in modes:
        if not timings.ok(name):
            errors = timings.errors[name]
            took = max(timings.failed_seconds[name], default=0.0)
            print(
                f"| {name} | FAILED: {len(errors)} calls raised (slowest {took:.1f} s), "
                f"then not run again: {errors[0][:110] if errors else ''} | - | - |"
            )
            continue
        med[name] = float(np.median(times[name]))
        rate = "-"
        if name.startswith(("numpy", "vector", "hybrid")):
            rate = f"{scanned / med[name] / 1e9:.1f}"
        print(
            f"| {name} | {med[name] * 1e3:.2f} | {np.percentile(times[name], 90) * 1e3:.2f} "
            f"| {rate} |"
        )
    if timings.ok("keyword"):
        kinds = sorted({k for k, _ in kw}, key=[k for k, _ in kw].index)
        for kind in kinds:
            rows = [i for i, (k, _) in enumerate(kw) if k == kind]
            print(
                f"| keyword: {kind} ({len(rows)}) | "
                f"{np.median(times['keyword'][rows]) * 1e3:.2f} "
                f"| {np.percentile(times['keyword'][rows], 90) * 1e3:.2f} | - |"
            )
    print()
    ratios = [
        ("hybrid / vector (median)", "hybrid, exact", "vector, exact", "<= 1.3"),
        ("vector / keyword (median)", "vector, exact", "keyword", ">= 5"),
        (
            "deep page (offset 10000) / first page",
            "vector, exact, offset 10000",
            "vector, exact",
            "<= 2",
        ),
        ("index exact vector / numpy", "vector, exact", "numpy matmul + argpartition", "near 1"),
    ]
    print("| ratio | measured | target |")
    print("| --- | ---: | --- |")
    for label, top, bottom, target in ratios:
        value = f"{med[top] / med[bottom]:.2f}" if top in med and bottom in med else "n/a"
        print(f"| {label} | {value} | {target} |")
    print()
    index.close()


# -- Part B: retrieval quality ----------------------------------------------------------
def shows(scene: Any, colour: str, shape: str) -> bool:
    return any(o.colour == colour and o.shape == shape for o in scene.objects)


def meaning_gain(scene: Any, colour: str, shape: str, position: str | None) -> int:
    if not shows(scene, colour, shape):
        return 0
    if len(scene.objects) == 1 and position in (None, scene.objects[0].position):
        return 2
    return 1


def ndcg(found: list[int], gains: dict[int, int], k: int = 10) -> float:
    """nDCG@k of scene indexes ``found`` (best first) for graded ``gains``."""
    dcg = sum((2 ** gains.get(s, 0) - 1) / np.log2(r + 2) for r, s in enumerate(found[:k]))
    ideal = sorted(gains.values(), reverse=True)[:k]
    best = sum((2**g - 1) / np.log2(r + 2) for r, g in enumerate(ideal))
    return float(dcg / best) if best else 0.0


def build_scenes(work: Path, count: int, matcher: Matcher, seed: int = 11) -> tuple:
    from mmsim import synthetic

    scenes = synthetic.generate(count, seed=seed, split="all", unique=False)
    rng = np.random.default_rng(seed)
    numbers = rng.choice(np.arange(1000, 10000), size=len(scenes), replace=False)
    rows, files, notes = [], [], {}
    for i, scene in enumerate(scenes):
        row = {"image": scene.image, "caption": scene.caption, "file": f"IMG_{numbers[i]}.png"}
        files.append(row["file"])
        if i % 4 == 0:
            note = f"SN-{rng.integers(1000, 9999)}-{chr(65 + rng.integers(26))}"
            row["note"] = note
            notes[i] = note
        rows.append(row)
    started = time.perf_counter()
    index = Index.build(rows, matcher, work / "scenes_idx", column="image", progress=False)
    built = time.perf_counter() - started
    return scenes, files, notes, index, built


def quality_queries(
    scenes: list, files: list[str], notes: dict[int, str], words: int, meanings: int, seed: int = 5
) -> list[tuple[str, str, dict[int, int]]]:
    """(type, text, gains by scene index)."""
    from mmsim.synthetic import COLOURS, POSITIONS, SHAPES

    rng = np.random.default_rng(seed)
    out = []
    noted = sorted(notes)
    for j in range(words):
        if j % 2 == 0:
            i = int(rng.integers(len(scenes)))
            out.append(("word", files[i], {i: 1}))
        else:
            i = noted[int(rng.integers(len(noted)))]
            out.append(("word", notes[i], {i: 1}))
    combos = [(c, s) for c in COLOURS for s in SHAPES]
    phrases = {
        "left": "on the left",
        "right": "on the right",
        "top": "at the top",
        "bottom": "at the bottom",
        "middle": "in the middle",
    }
    for j in range(meanings):
        colour, shape = combos[j % len(combos)]
        position = None
        if j >= len(combos):
            position = POSITIONS[int(rng.integers(len(POSITIONS)))]
        article = "an" if colour[0] in "aeiou" else "a"
        text = f"{article} {colour} {shape}" + (f" {phrases[position]}" if position else "")
        gains = {
            i: g
            for i, scene in enumerate(scenes)
            if (g := meaning_gain(scene, colour, shape, position))
        }
        out.append(("meaning", text, gains))
    return out


def run_mode(index: Index, text: str, mode: str, by_file: dict[str, int], **knobs: Any) -> list:
    try:
        if mode == "keyword":
            page = index.search_page(keywords=text, mode="keyword", top_k=10)
        else:
            page = index.search_page(
                text, mode=mode, top_k=10, exact=True, modality="text", **knobs
            )
    except ValueError:  # QueryError: nothing the mode can run counts 0
        return []
    return [by_file[h["metadata"]["file"]] for h in page.hits]


def part_b(work: Path, scenes_count: int, words: int, meanings: int, matcher: Matcher) -> tuple:
    scenes, files, notes, index, built = build_scenes(work, scenes_count, matcher)
    print(
        f"Part B: {len(scenes):,} generated scenes (demo encoder, "
        f"{sum(len(s.objects) == 1 for s in scenes)} single-shape), Index.build in "
        f"{built:.1f} s; {words} word and {meanings} meaning queries"
    )
    by_file = {f: i for i, f in enumerate(files)}
    queries = quality_queries(scenes, files, notes, words, meanings)
    variants: list[tuple[str, str, dict[str, Any]]] = [
        ("vector", "vector", {}),
        ("keyword", "keyword", {}),
        ("hybrid", "hybrid", {}),
        ("hybrid rrf_k=10", "hybrid", {"rrf_k": 10}),
        ("hybrid rrf_k=200", "hybrid", {"rrf_k": 200}),
        ("hybrid window=20", "hybrid", {"window": 20}),
        ("hybrid window=1000", "hybrid", {"window": 1000}),
        ("hybrid keyword weight 1.5", "hybrid", {"fusion_weights": {"vector": 1, "keyword": 1.5}}),
        ("hybrid vector weight 1.5", "hybrid", {"fusion_weights": {"vector": 1.5, "keyword": 1}}),
    ]
    scores = {
        name: np.array(
            [
                ndcg(run_mode(index, text, mode, by_file, **knobs), gains)
                for _, text, gains in queries
            ]
        )
        for name, mode, knobs in variants
    }
    kinds = np.array([kind for kind, _, _ in queries])
    placed = np.array(
        [" on the " in t or " at the " in t or " in the " in t for _, t, _ in queries]
    )
    groups = [
        ("word", kinds == "word"),
        ("meaning", kinds == "meaning"),
        ("all", np.ones(len(queries), dtype=bool)),
        ("meaning: colour + shape", (kinds == "meaning") & ~placed),
        ("meaning: with a place", (kinds == "meaning") & placed),
    ]
    print()
    print("| nDCG@10 | vector | keyword | hybrid |")
    print("| --- | ---: | ---: | ---: |")
    for label, rows in groups:
        cells = [f"{scores[name][rows].mean():.3f}" for name in ("vector", "keyword", "hybrid")]
        print(f"| {label} ({rows.sum()}) | " + " | ".join(cells) + " |")
    print()
    print("Fusion knobs (extra rows; the main table uses the defaults rrf_k=60, equal weights,")
    print("window=100):")
    print()
    print("| hybrid variant | word | meaning | all |")
    print("| --- | ---: | ---: | ---: |")
    for name, _, _ in variants[2:]:
        cells = [f"{scores[name][rows].mean():.3f}" for _, rows in groups[:3]]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print()
    return scenes, by_file, index


# -- Part C: negative parts -------------------------------------------------------------
def part_c(scenes: list, by_file: dict[str, int], index: Index) -> None:
    from mmsim.synthetic import COLOURS

    def shares(query: Query, colour: str, k: int) -> tuple[float, float]:
        page = index.search_page(query, top_k=k, exact=True, modality="text")
        found = [scenes[by_file[h["metadata"]["file"]]] for h in page.hits]
        triangles = np.mean([any(o.shape == "triangle" for o in s.objects) for s in found])
        coloured = np.mean([any(o.colour == colour for o in s.objects) for s in found])
        return float(triangles), float(coloured)

    base = np.mean([any(o.shape == "triangle" for o in s.objects) for s in scenes])
    found: dict[tuple[bool, int], list[tuple[float, float]]] = {}
    for colour in COLOURS:
        article = "an" if colour[0] in "aeiou" else "a"
        positive = f"{article} {colour} shape"
        for negative in (False, True):
            query = Query(positive=[positive], negative=["a triangle"] if negative else [])
            for k in (10, 50):
                found.setdefault((negative, k), []).append(shares(query, colour, k))
    print(
        f"Part C: negative parts, averaged over the {len(COLOURS)} colours "
        f"({base:.0%} of all scenes show a triangle)"
    )
    print()
    print("| query | top 10: triangle | top 10: colour | top 50: triangle | top 50: colour |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, negative in (("a COLOUR shape", False), ("a COLOUR shape - a triangle", True)):
        cells = [
            f"{np.mean([pair[j] for pair in found[(negative, k)]]):.0%}"
            for k in (10, 50)
            for j in (0, 1)
        ]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scenes", type=int, default=3000)
    parser.add_argument("--word-queries", type=int, default=36)
    parser.add_argument("--meaning-queries", type=int, default=36)
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()
    matcher = Matcher("demo", progress=False)
    work = Path(tempfile.mkdtemp(prefix="mmsim-bench-search-", dir="/tmp"))
    try:
        print(f"cores: {os.cpu_count()}")
        if not args.skip_latency:
            part_a(work, args.items, args.dim, args.queries, args.repeats)
        scenes, by_file, index = part_b(
            work, args.scenes, args.word_queries, args.meaning_queries, matcher
        )
        part_c(scenes, by_file, index)
        index.close()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak resident memory: {peak:,.0f} MB (includes the mapped shard pages)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
