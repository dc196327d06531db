"""Retrieval metrics with trec_eval semantics, TREC run/qrels files, bootstrap intervals.

Numbers from here must be comparable with published BEIR/MTEB/Anserini results, which
all come from trec_eval (usually through ``pytrec_eval``), so the conventions follow it
exactly (checked against trec_eval's source and against pytrec_eval in the tests):

* Ranking: a run holds scores, not ranks. Documents are sorted by score descending and
  ties are broken by doc id in DEScending lexicographic (code point = UTF-8 byte) order:
  ``comp_sim_docno`` in trec_eval's ``form_res_rels.c`` returns
  ``strcmp(doc2, doc1)``. Scores ``1.0`` for ``a``, ``b`` and ``z`` rank ``z, b, a``.
  The rank column of a TREC run file is ignored, as trec_eval ignores it.
* Relevant means ``rel >= 1`` (trec_eval's default ``-l 1``); nDCG uses the graded value
  as gain (``rel <= 0`` gives no gain), with discount ``log2(rank + 1)`` and the ideal
  ranking built from ALL judged documents of the query, cut at the same k (ndcg_cut).
* AP (and recall) divide by the number of ALL judged-relevant documents of the query,
  retrieved or not. ``map@k`` is trec_eval's ``map_cut``; ``precision@k`` divides by k
  even when fewer than k documents were retrieved (``P_k``); ``mrr`` is ``recip_rank``
  (no cut), ``mrr@k`` only credits a first relevant document at rank <= k.
* Averages are over the queries of the qrels, and a query with no results in the run
  counts 0 for every measure (trec_eval ``-c``). Queries of the run absent from the
  qrels are ignored. Queries whose judgments hold no relevant document are skipped by
  default; trec_eval itself keeps them with every measure 0
  (``include_unanswerable=True`` reproduces that).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.core.errors import RagError

Qrels = dict[str, dict[str, int]]
"""query id -> doc id -> graded relevance (<= 0: not relevant)."""
Run = dict[str, dict[str, float]]
"""query id -> doc id -> retrieval score (higher is better)."""
Ranking = Mapping[str, float] | Sequence[str]
"""One query's results: scores by doc id, or doc ids already in rank order."""

DEFAULT_KS: tuple[int, ...] = (1, 3, 5, 10, 100)


class EvalDataError(RagError):
    """A run, qrels or dataset file (or in-memory run) is missing or malformed."""


def rank_documents(scores: Mapping[str, float]) -> list[str]:
    """Doc ids in trec_eval order: score descending, ties by doc id descending."""
    for doc_id, score in scores.items():
        if math.isnan(score):
            raise EvalDataError(f"score of document {doc_id!r} is NaN; scores must be numbers")
    return [d for d, _ in sorted(scores.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)]


def _ranked(ranking: Ranking) -> Sequence[str]:
    if isinstance(ranking, str):
        raise TypeError("ranking must be a mapping of scores or a sequence of doc ids, not a str")
    return rank_documents(ranking) if isinstance(ranking, Mapping) else ranking


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"cutoff k must be >= 1, got {k}")


def _num_relevant(qrel: Mapping[str, int]) -> int:
    return sum(1 for rel in qrel.values() if rel >= 1)


def average_precision(qrel: Mapping[str, int], ranking: Ranking, k: int | None = None) -> float:
    """AP (trec_eval ``map``; ``map_cut`` with ``k``): mean precision at each relevant hit.

    Divides by every judged-relevant document, so relevant documents never retrieved
    (or below k) pull AP down. 0 when the query has no relevant document.
    """
    docs = _ranked(ranking)
    if k is not None:
        _check_k(k)
        docs = docs[:k]
    total = _num_relevant(qrel)
    if total == 0:
        return 0.0
    hits, acc = 0, 0.0
    for i, doc in enumerate(docs):
        if qrel.get(doc, 0) >= 1:
            hits += 1
            acc += hits / (i + 1)
    return acc / total


def ndcg_at_k(qrel: Mapping[str, int], ranking: Ranking, k: int) -> float:
    """nDCG@k (trec_eval ``ndcg_cut``): graded gain over log2(rank+1), ideal from all judgments."""
    _check_k(k)
    dcg = 0.0
    for i, doc in enumerate(_ranked(ranking)[:k]):
        gain = qrel.get(doc, 0)
        if gain > 0:
            dcg += gain / math.log2(i + 2)
    ideal = sorted((rel for rel in qrel.values() if rel > 0), reverse=True)[:k]
    idcg = 0.0
    for i, gain in enumerate(ideal):
        idcg += gain / math.log2(i + 2)
    return dcg / idcg if idcg > 0.0 else 0.0


def recall_at_k(qrel: Mapping[str, int], ranking: Ranking, k: int) -> float:
    """Recall@k (trec_eval ``recall_k``): relevant docs in the top k / all relevant docs."""
    _check_k(k)
    total = _num_relevant(qrel)
    if total == 0:
        return 0.0
    return sum(1 for doc in _ranked(ranking)[:k] if qrel.get(doc, 0) >= 1) / total


def precision_at_k(qrel: Mapping[str, int], ranking: Ranking, k: int) -> float:
    """Precision@k (trec_eval ``P_k``): relevant docs in the top k / k, even if fewer returned."""
    _check_k(k)
    return sum(1 for doc in _ranked(ranking)[:k] if qrel.get(doc, 0) >= 1) / k


def reciprocal_rank_at_k(qrel: Mapping[str, int], ranking: Ranking, k: int | None = None) -> float:
    """1 / rank of the first relevant doc; 0 if none is within the top k.

    With ``k=None`` it is trec_eval's ``recip_rank`` (no cut); averaged it is MRR / MRR@k.
    """
    docs = _ranked(ranking)
    if k is not None:
        _check_k(k)
        docs = docs[:k]
    for i, doc in enumerate(docs):
        if qrel.get(doc, 0) >= 1:
            return 1.0 / (i + 1)
    return 0.0


def metric_names(ks: Iterable[int] = DEFAULT_KS) -> list[str]:
    """The measure names ``evaluate`` reports for these cutoffs, in output order."""
    names = ["map", "mrr"]
    for k in ks:
        names += [f"ndcg@{k}", f"recall@{k}", f"precision@{k}", f"mrr@{k}", f"map@{k}"]
    return names


def query_metrics(qrel: Mapping[str, int], ranking: Ranking, ks: Iterable[int] = DEFAULT_KS) -> dict[str, float]:
    """Every measure of ``metric_names(ks)`` for one query (ranks the run once)."""
    docs = _ranked(ranking)
    values = {"map": average_precision(qrel, docs), "mrr": reciprocal_rank_at_k(qrel, docs)}
    for k in ks:
        values[f"ndcg@{k}"] = ndcg_at_k(qrel, docs, k)
        values[f"recall@{k}"] = recall_at_k(qrel, docs, k)
        values[f"precision@{k}"] = precision_at_k(qrel, docs, k)
        values[f"mrr@{k}"] = reciprocal_rank_at_k(qrel, docs, k)
        values[f"map@{k}"] = average_precision(qrel, docs, k)
    return values


@dataclass(frozen=True, slots=True)
class EvalResult:
    """Mean and per-query values of every measure, plus which queries were counted how.

    ``per_query`` holds every evaluated query (``queries``, sorted); ``missing`` lists the
    evaluated queries the run had no results for (they count 0); ``skipped`` lists qrels
    queries left out because no judged document is relevant.
    """

    means: dict[str, float]
    per_query: dict[str, dict[str, float]]
    queries: tuple[str, ...]
    missing: tuple[str, ...]
    skipped: tuple[str, ...]

    def values(self, metric: str) -> list[float]:
        """One measure's per-query values in ``queries`` order (for bootstrap helpers)."""
        if metric not in self.means:
            raise KeyError(f"unknown metric {metric!r}; known: {', '.join(self.means)}")
        return [self.per_query[q][metric] for q in self.queries]


def evaluate(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    ks: Iterable[int] = DEFAULT_KS,
    include_unanswerable: bool = False,
) -> EvalResult:
    """Score a run against qrels with trec_eval ``-c`` semantics (see the module docstring).

    Evaluated queries: every qrels query with at least one relevant doc (with
    ``include_unanswerable`` every qrels query, exactly as trec_eval). Means are plain
    averages over them; a query missing from the run (or with no results) counts 0.
    """
    ks = tuple(ks)
    for k in ks:
        _check_k(k)
    names = metric_names(ks)
    per_query: dict[str, dict[str, float]] = {}
    missing: list[str] = []
    skipped: list[str] = []
    for qid in sorted(qrels):
        qrel = qrels[qid]
        if not include_unanswerable and _num_relevant(qrel) == 0:
            skipped.append(qid)
            continue
        results = run.get(qid)
        if not results:
            missing.append(qid)
            per_query[qid] = dict.fromkeys(names, 0.0)
        else:
            per_query[qid] = query_metrics(qrel, results, ks)
    n = len(per_query)
    means = {m: (math.fsum(v[m] for v in per_query.values()) / n if n else 0.0) for m in names}
    return EvalResult(means, per_query, tuple(per_query), tuple(missing), tuple(skipped))


# --- files ---------------------------------------------------------------------------------


def _lines(path: Path, tabs: bool) -> Iterable[tuple[int, list[str]]]:
    """(line number, fields) of each non-blank line; CRLF and a BOM tolerated.

    Fields are split on whitespace; with ``tabs``, a line that splits on tabs into exactly
    three fields (BEIR TSV) is split on tabs instead, so ids may hold spaces there.
    """
    try:
        with open(path, encoding="utf-8-sig") as fh:
            for lineno, line in enumerate(fh, 1):
                fields = line.rstrip("\r\n").split("\t") if tabs else []
                if len(fields) != 3:
                    fields = line.split()
                if any(f.strip() for f in fields):
                    yield lineno, [f.strip() for f in fields]
    except FileNotFoundError:
        raise EvalDataError(f"{path} not found") from None
    except UnicodeDecodeError as exc:
        raise EvalDataError(f"{path} is not UTF-8 text ({exc.reason})") from None


def write_trec_run(run: Mapping[str, Mapping[str, float]], path: str | Path, tag: str) -> None:
    """Write ``qid Q0 docid rank score tag`` lines, queries sorted, docs in trec_eval order.

    Scores are written with ``repr`` so that reading the file back gives the same floats
    and therefore the same ranking (ties included).
    """
    if not tag or any(c.isspace() for c in tag):
        raise ValueError(f"run tag must be one non-empty word, got {tag!r}")
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for qid in sorted(run):
            for rank, doc in enumerate(rank_documents(run[qid]), 1):
                if not qid or not doc or any(c.isspace() for c in qid + doc):
                    raise EvalDataError(f"query {qid!r} doc {doc!r}: TREC run ids must be non-empty words")
                fh.write(f"{qid} Q0 {doc} {rank} {float(run[qid][doc])!r} {tag}\n")


def read_trec_run(path: str | Path) -> Run:
    """Read a TREC run file (``qid Q0 docid rank score tag``); the rank column is ignored."""
    path = Path(path)
    run: Run = {}
    for lineno, fields in _lines(path, tabs=False):
        try:
            if len(fields) != 6:
                raise ValueError
            qid, _, doc, _, score_text, _ = fields
            score = float(score_text)
        except ValueError:
            raise EvalDataError(
                f"{path} line {lineno}: expected 'qid Q0 docid rank score tag', got {' '.join(fields)[:80]!r}"
            ) from None
        docs = run.setdefault(qid, {})
        if doc in docs:
            raise EvalDataError(f"{path} line {lineno}: document {doc!r} listed twice for query {qid!r}")
        docs[doc] = score
    return run


def read_qrels_tsv(path: str | Path) -> Qrels:
    """Read qrels in BEIR TSV (``query-id corpus-id score``, optional header) or TREC format.

    TREC qrels lines are ``qid iteration docid rel``. Relevance must be an integer. A
    pair judged twice with different values is an error (identical repeats are fine).
    """
    path = Path(path)
    qrels: Qrels = {}
    expected = "'query-id<TAB>corpus-id<TAB>score' (BEIR) or 'qid 0 docid rel' (TREC)"
    first = True
    for lineno, fields in _lines(path, tabs=True):
        if first and [f.lower() for f in fields] == ["query-id", "corpus-id", "score"]:
            first = False
            continue
        first = False
        if len(fields) == 3:
            qid, doc, rel_text = fields
        elif len(fields) == 4:
            qid, _, doc, rel_text = fields
        else:
            raise EvalDataError(f"{path} line {lineno}: expected {expected}, got {len(fields)} fields")
        if not qid or not doc:
            raise EvalDataError(f"{path} line {lineno}: empty query or document id; expected {expected}")
        try:
            rel = int(rel_text)
        except ValueError:
            raise EvalDataError(f"{path} line {lineno}: relevance {rel_text!r} is not an integer") from None
        judged = qrels.setdefault(qid, {})
        if judged.get(doc, rel) != rel:
            raise EvalDataError(
                f"{path} line {lineno}: query {qid!r} doc {doc!r} judged twice ({judged[doc]} and {rel})"
            )
        judged[doc] = rel
    return qrels


# --- bootstrap -----------------------------------------------------------------------------


def _bootstrap_means(values: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Means of ``n`` resamples with replacement, drawn in chunks to bound memory."""
    rng = np.random.default_rng(seed)
    size = len(values)
    chunk = max(1, 2_000_000 // size)
    out = np.empty(n)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        out[start:stop] = values[rng.integers(0, size, size=(stop - start, size))].mean(axis=1)
    return out


def _as_array(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty sequence of numbers")
    return arr


def bootstrap_ci(
    values: Sequence[float] | np.ndarray, n: int = 1000, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float]:
    """Percentile bootstrap interval (1 - alpha) for the mean of per-query values.

    Deterministic for a given seed, so reported intervals are reproducible.
    """
    if not 0.0 < alpha < 1.0 or n < 1:
        raise ValueError(f"need 0 < alpha < 1 and n >= 1, got alpha={alpha}, n={n}")
    means = _bootstrap_means(_as_array(values, "values"), n, seed)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


@dataclass(frozen=True, slots=True)
class PairedDifference:
    """Mean of ``a - b`` over paired queries, with its bootstrap interval."""

    mean_diff: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        """True when the interval excludes 0 (a and b differ at this alpha)."""
        return self.low > 0.0 or self.high < 0.0


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], n: int = 1000, seed: int = 0, alpha: float = 0.05
) -> PairedDifference:
    """Compare two systems on the same queries: resample query indices, keep the pairs.

    ``a`` and ``b`` are per-query values in the same query order (``EvalResult.values``).
    """
    arr_a, arr_b = _as_array(a, "a"), _as_array(b, "b")
    if arr_a.shape != arr_b.shape:
        raise ValueError(f"a and b must pair up: {arr_a.size} vs {arr_b.size} values")
    diff = arr_a - arr_b
    low, high = bootstrap_ci(diff, n=n, seed=seed, alpha=alpha)
    return PairedDifference(float(diff.mean()), low, high)
