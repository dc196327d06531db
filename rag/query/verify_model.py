"""The grounding verifier: a small cross-encoder that gives P(evidence supports claim), no LLM needed.

``rag tune verifier`` trains it (rag.tune.verifier) and stores compact fp16 weights over the
packaged MiniLM, as the reranker does (rag.core.ce_weights), under the names
``verifier.safetensors`` and ``rag_verifier.json``. The one shipped with rag lives in
``rag/models/verifier``. A claim that answers a question is read together with it
(:func:`answer_claim`), the form it was trained on for ARES rows.

Answering uses it through rag.query.checker (``[answer] checker``): the per-sentence support checks
and ``[answer] verify``; the evals use it with ``--judge-method verifier``. A long source is read in
overlapping windows of whole sentences (:func:`windows`) and the best window counts.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Sequence

from rag.core.errors import ModelLoadError
from rag.core.threads import torch_threads

WINDOW_WORDS = 120  # the evidence windows the shipped verifier was trained on (--max-words 120)
MAX_WINDOWS = 8  # per source: a claim is checked against the first ~500 words of a long chunk at most
SHIPPED = Path(__file__).resolve().parents[1] / "models" / "verifier"
WEIGHTS = "verifier.safetensors"
META = "rag_verifier.json"


def answer_claim(answer: str, question: str | None = None) -> str:
    """The claim the verifier reads: the answer alone, or the answer to ``question`` with it."""
    answer = " ".join(answer.split())
    return f"Question: {' '.join(question.split())} Answer: {answer}" if question and question.strip() else answer


def windows(text: str, max_words: int = WINDOW_WORDS, limit: int = MAX_WINDOWS) -> list[str]:
    """A source cut into runs of whole sentences of at most ``max_words`` words, each starting about half a
    window after the previous one (overlapping, so a fact that straddles a cut is whole in some window)."""
    from rag.query.attribute import sentence_spans

    text = text.strip()
    if len(text.split()) <= max_words:
        return [text] if text else []
    spans = sentence_spans(text) or [(0, len(text))]
    sizes = [len(text[a:b].split()) for a, b in spans]
    out: list[str] = []
    start = 0
    while start < len(spans) and len(out) < limit:
        end, words = start, 0
        while end < len(spans) and (end == start or words + sizes[end] <= max_words):
            words += sizes[end]
            end += 1
        piece = " ".join(text[spans[start][0]:spans[end - 1][1]].split()[:max_words * 2])
        out.append(piece)
        if end >= len(spans):
            break
        half, step = 0, start
        while step < end - 1 and half + sizes[step] <= words // 2:
            half += sizes[step]
            step += 1
        start = max(step, start + 1)
    return out


def has_weights(folder: str | Path) -> bool:
    """Whether ``folder`` holds verifier weights made by ``rag tune verifier``."""
    return (Path(folder) / META).is_file() and (Path(folder) / WEIGHTS).is_file()


class Verifier:
    """A loaded verifier: ``probability(evidence, claim)`` is P(the evidence supports the claim)."""

    def __init__(self, model: str | Path | None = None, batch_size: int = 16, threads: int = 0,
                 max_length: int | None = None) -> None:
        from rag.core.ce_weights import load_compact

        folder = Path(model).expanduser() if model else SHIPPED
        if not has_weights(folder):
            raise ModelLoadError(
                f"no verifier weights in {folder} ({META} and {WEIGHTS}); train them with `rag tune verifier "
                f"--train ARES_TSV_OR_SCIFACT --out {folder}` (the LLM support check works without them)")
        try:
            self.model, self.meta = load_compact(folder, max_length, weights_name=WEIGHTS, meta_name=META)
        except ModelLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - any loader failure becomes one clear message
            raise ModelLoadError(f"cannot load the verifier in {folder}: {type(exc).__name__}: {exc}") from None
        self.folder = folder
        self.batch_size = batch_size
        self.threads = threads
        self.threshold = float(self.meta.get("threshold", 0.5))

    def probabilities(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """P(supported) of every (evidence, claim) pair, in one batched pass."""
        if not pairs:
            return []
        inputs = [(claim, evidence) for evidence, claim in pairs]  # trained claim first: truncation cuts evidence
        with torch_threads(self.threads):
            out = self.model.predict(inputs, batch_size=self.batch_size, show_progress_bar=False)
        return [float(x) for x in out]

    def probability(self, evidence: str, claim: str) -> float:
        """P(``evidence`` supports ``claim``)."""
        return self.probabilities([(evidence, claim)])[0]

    def support(self, claim: str, sources: Sequence[str]) -> float:
        """P(some source supports ``claim``): the best window of any source (each read in :func:`windows`)."""
        return max(self.supports([(claim, sources)]) or [0.0])

    def supports(self, checks: Sequence[tuple[str, Sequence[str]]]) -> list[float]:
        """:meth:`support` of several (claim, sources) checks, in one batched pass."""
        words = int(self.meta.get("settings", {}).get("max_words") or WINDOW_WORDS)
        pairs: list[tuple[str, str]] = []
        owner: list[int] = []
        for i, (claim, sources) in enumerate(checks):
            for source in sources:
                for window in windows(source, words):
                    pairs.append((window, claim))
                    owner.append(i)
        best = [0.0] * len(checks)
        for i, p in zip(owner, self.probabilities(pairs)):
            best[i] = max(best[i], p)
        return best

    def supported(self, evidence: str, claim: str) -> bool:
        """Whether P(supported) reaches the verifier's threshold (0.5 unless its metadata says otherwise)."""
        return self.probability(evidence, claim) >= self.threshold


@lru_cache(maxsize=2)
def _load(model: str, threads: int) -> Verifier | str:
    try:
        return Verifier(model or None, threads=threads)
    except ModelLoadError as exc:
        return str(exc)


def get_verifier(model: str | Path | None = None, threads: int = 0) -> tuple[Verifier | None, str | None]:
    """The verifier (loaded once per process), or (None, why) so a caller can fall back to the LLM check."""
    loaded = _load(str(model or ""), threads)
    return (None, loaded) if isinstance(loaded, str) else (loaded, None)
