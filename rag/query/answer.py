"""Grounded answering: retrieve, ask the LLM with numbered sources, validate and check the citations."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from rag.query.attribute import Attributed, attribute
from rag.query.cite import REFUSAL, CitedSentence, add_markers, is_refusal, parse_answer
from rag.core.config import Settings
from rag.core.errors import StoreError
from rag.query.expand import Expansion, expand_query, search_expanded
from rag.query.multihop import HOP_DEPTH, Hop, multihop
from rag.query.prompt import answer_messages, answerable_messages, join_messages, verify_messages
from rag.query.retrieve import ScoredChunk
from rag.query.route import DEFAULT_COLLECTION, CollectionSearch, Route, choose_route, routable
from rag.query.search import Searcher


@dataclass(frozen=True, slots=True)
class Citation:
    """A source the answer cites, where its passage sits in the document, and whether it held up."""

    n: int
    chunk_id: str
    source: str
    page: int | None
    start: int | None
    end: int | None
    supported: bool | None
    attributed: bool = False  # added by rag (see rag.query.attribute) for every sentence that cites it


@dataclass(frozen=True, slots=True)
class SentenceQuote:
    """The source sentence that an answer sentence restates: source number, document offsets, text, cosine."""

    n: int
    start: int | None
    end: int | None
    text: str
    similarity: float


@dataclass(frozen=True, slots=True)
class CheckedSentence:
    """An answer sentence, the sources it cites, and the judge's verdict (None: not checked)."""

    text: str
    sources: tuple[int, ...]
    supported: bool | None
    support_probability: float | None = None
    attributed: bool = False  # its citation was added by rag, not written by the model
    quote: SentenceQuote | None = None


@dataclass(frozen=True, slots=True)
class Evidence:
    """The passages an answer is built on, and how they were found: route, expansions, hops, cost."""

    chunks: tuple[ScoredChunk, ...]
    queries: tuple[str, ...]
    route: Route
    expansion: Expansion
    hops: tuple[Hop, ...] = ()
    hops_of: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    llm_calls: int = 0
    timings: Mapping[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    stopped: str = ""

    def as_dict(self) -> dict[str, Any]:
        """How the evidence was gathered (the ``retrieval`` part of ``--json``)."""
        return {
            "route": self.route.as_dict(),
            "expansion": self.expansion.as_dict(),
            "hops": [h.as_dict() for h in self.hops],
            "hop_stopped": self.stopped,
            "source_hops": [list(self.hops_of.get(c.chunk_id, (1,))) for c in self.chunks],
            "llm_calls": self.llm_calls,
        }


@dataclass(frozen=True, slots=True)
class Answer:
    """What ``rag ask`` returns."""

    question: str
    answer: str
    refused: bool
    citations: tuple[Citation, ...]
    sources: tuple[ScoredChunk, ...]
    sentences: tuple[CheckedSentence, ...]
    invalid_citations: tuple[int, ...]
    queries: tuple[str, ...]
    route: tuple[str, ...]
    timings: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    evidence: Evidence | None = None
    withdrawn: bool = False  # the streamed draft failed its support checks and was replaced by a refusal
    answerable_probability: float | None = None  # the [answer] gate's P(yes); None when the gate is off
    verified_probability: float | None = None  # the [answer] verify check's P(yes); None when not asked
    joined: bool = False  # the draft refused and [multihop] join asked again (the answer is the retry's)

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` shape."""
        return {
            "question": self.question,
            "answer": self.answer,
            "refused": self.refused,
            "citations": [
                {"n": c.n, "chunk_id": c.chunk_id, "source": c.source, "page": c.page, "start": c.start,
                 "end": c.end, "supported": c.supported, "attributed": c.attributed}
                for c in self.citations
            ],
            "sentences": [
                {"text": s.text, "sources": list(s.sources), "supported": s.supported,
                 "support_probability": s.support_probability, "attributed": s.attributed,
                 "quote": None if s.quote is None else {"n": s.quote.n, "start": s.quote.start, "end": s.quote.end,
                                                        "text": s.quote.text, "similarity": s.quote.similarity}}
                for s in self.sentences
            ],
            "invalid_citations": list(self.invalid_citations),
            "sources": [
                {"n": n, "chunk_id": c.chunk_id, "source": c.source, "page": c.page,
                 "start": c.payload.get("start"), "end": c.payload.get("end"), "text": c.text}
                for n, c in enumerate(self.sources, 1)
            ],
            "queries": list(self.queries),
            "route": list(self.route),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "notes": list(self.notes),
            "withdrawn": self.withdrawn,
            "answerable_probability": self.answerable_probability,
            "verified_probability": self.verified_probability,
            "joined": self.joined,
            "retrieval": self.evidence.as_dict() if self.evidence is not None else None,
        }


def support_prompt(sentence: str, passages: Sequence[str]) -> list[dict[str, str]]:
    """A yes/no question: do these passages state what the sentence claims?"""
    joined = "\n\n".join(f"<passage>\n{p.strip()}\n</passage>" for p in passages)
    return [
        {"role": "system", "content": "You check claims against passages. Answer with one word: Yes or No."},
        {"role": "user", "content": f"{joined}\n\nClaim: {sentence}\n\nDo the passages support the claim? "
                                    "Answer Yes or No."},
    ]


def _with_attribution(sentences: Sequence[CheckedSentence], attributed: Attributed,
                      chunks: Sequence[ScoredChunk]) -> tuple[CheckedSentence, ...]:
    """Mark added citations and attach each sentence's quote, with offsets into the source document."""
    out = []
    for s, added, q in zip(sentences, attributed.added, attributed.quotes):
        quote = None
        if q is not None:
            chunk = chunks[q.source - 1]
            base = chunk.payload.get("start")
            offset = int(base) if base is not None else None
            quote = SentenceQuote(q.source, None if offset is None else offset + q.start,
                                  None if offset is None else offset + q.end, chunk.text[q.start:q.end], q.similarity)
        out.append(replace(s, attributed=added, quote=quote))
    return tuple(out)


def should_withdraw(sentences: Sequence[CheckedSentence], refused: bool) -> bool:
    """True when some sentences were checked and every one failed against its own sources.

    Such an answer is a guess dressed in citations; ``[answer] refuse_unsupported`` replaces it
    with a refusal. Uncited sentences are not checked, so they neither trigger nor prevent this.
    """
    checked = [s for s in sentences if s.supported is not None]
    return not refused and bool(checked) and not any(s.supported for s in checked)


class Answerer:
    """Answers questions with cited, checked sentences, from one collection or the ones a router picks.

    With ``collection`` given, only that collection is searched. Without it, questions are routed
    among the home's collections when any carries a description (``[route]``), else they go to
    ``default``. ``[query] expand`` and ``[multihop] mode`` add expansions and hops.
    """

    def __init__(self, settings: Settings, home: Path, collection: str | None = None, llm: Any = None,
                 retriever: str | None = None, rerank: bool | None = None) -> None:
        self.settings = settings
        self.home = home
        self.fixed = collection
        self.notes: list[str] = []
        self.candidates: dict[str, str] = {}
        if collection is None and settings.route.mode != "none":
            self.candidates = routable(home)
        self.searchers: dict[str, Searcher] = {}
        names = [collection] if collection else sorted(self.candidates) or [DEFAULT_COLLECTION]
        failure: StoreError | None = None
        for name in names:
            try:
                self.searchers[name] = Searcher(settings, home, name, retriever, rerank)
            except StoreError as exc:  # an empty described collection is left out of routing, not fatal
                if len(names) == 1:
                    raise
                failure = failure or exc
                self.notes.append(f"collection '{name}' left out of routing: {exc}")
        if not self.searchers:
            raise failure or StoreError("no collection to search; run `rag ingest PATH` first")
        self.candidates = {n: t for n, t in self.candidates.items() if n in self.searchers}
        self.collection = next(iter(self.searchers))
        self.searcher = self.searchers[self.collection]
        if llm is None:
            from rag.core.llm import LlmClient

            llm = LlmClient(settings.llm, home)
        self.llm = llm

    def route(self, query: str) -> Route:
        """Where ``query`` goes: the fixed collection, the only one, or the router's choice."""
        if self.fixed:
            return Route((self.fixed,), "fixed")
        if len(self.searchers) == 1:
            return Route((self.collection,), "none" if not self.candidates else "only")
        return choose_route(query, self.candidates, self.settings.route, self.searcher.ctx.embedder, self.llm)

    def gather(self, query: str, k: int | None = None) -> Evidence:
        """The top ``k`` passages for ``query`` after routing, expansion and hops (no answer generated)."""
        k = k or self.settings.answer.k
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        route = self.route(query)
        timings["route_s"] = time.perf_counter() - t0
        search = CollectionSearch({n: self.searchers[n] for n in route.collections},
                                  self.settings.retrieval.rrf_k)
        t1 = time.perf_counter()
        expansion = expand_query(query, self.settings.query, self.llm)
        if expansion.mode != "none":
            timings["expand_s"] = time.perf_counter() - t1
        hop_cfg = self.settings.multihop
        hopping = hop_cfg.mode != "off" and hop_cfg.max_hops > 1
        t2 = time.perf_counter()
        first = search_expanded(query, expansion, max(k, HOP_DEPTH) if hopping else k, search.search,
                                search.retrieve, self.settings.retrieval.rrf_k)
        timings["first_hop_s"] = time.perf_counter() - t2
        t3 = time.perf_counter()
        hops = multihop(query, first, search.retrieve, hop_cfg, self.llm)
        if hopping:
            timings["hops_s"] = time.perf_counter() - t3
        timings["retrieve_s"] = time.perf_counter() - t0
        queries = (query, *expansion.queries, *(q for h in hops.hops if h.strategy == "llm" for q in h.queries))
        return Evidence(tuple(hops.chunks[:k]), queries, route, expansion, hops.hops, hops.hops_of,
                        route.llm_calls + expansion.llm_calls + hops.llm_calls, timings,
                        (*self.notes, *search.notes, *hops.notes, *((route.note,) if route.note else ())),
                        hops.stopped)

    def ask(self, question: str, on_token: Callable[[str], None] | None = None,
            query: str | None = None, evidence: Evidence | None = None) -> Answer:
        """Answer ``question``; ``query`` (e.g. a rewritten follow-up) is what gets searched.

        ``evidence`` already gathered (e.g. by an evaluation) is used as it is instead of searching.
        """
        t0 = time.perf_counter()
        evidence = evidence if evidence is not None else self.gather(query or question)
        timings: dict[str, float] = dict(evidence.timings)
        chunks = evidence.chunks
        gate = self.settings.answer.gate
        p_answerable = None
        if gate > 0 and chunks:
            tg = time.perf_counter()
            p_answerable = round(self.llm.yes_probability(answerable_messages(question, chunks)), 4)
            timings["gate_s"] = time.perf_counter() - tg
        gated = p_answerable is not None and p_answerable < gate
        t1 = time.perf_counter()
        if gated:
            timings["first_token_s"] = time.perf_counter() - t0
            if on_token:
                on_token(REFUSAL)
            text = REFUSAL
        else:
            text = self._generate(question, chunks, t0, timings, on_token)
        verify = self.settings.answer.verify
        joined = not gated and verify > 0 and is_refusal(text) and self._joinable(evidence)
        if joined:  # the sources came from several hops: ask once more, to join them (verified below)
            if on_token:
                on_token("\n\n")
            text = self._generate(question, chunks, t0, {}, on_token, join_messages(question, chunks))
        timings["generate_s"] = time.perf_counter() - t1
        parsed = parse_answer(text, len(chunks))
        refused = is_refusal(text)
        p_stated = None
        if verify > 0 and not refused:  # against the passages it cites, or all of them when it cites none
            tv = time.perf_counter()
            read = [chunks[n - 1].text for n in sorted(parsed.cited)] or [c.text for c in chunks]
            p_stated = round(self.llm.yes_probability(verify_messages(question, parsed.text, read)), 4)
            timings["verify_s"] = time.perf_counter() - tv
        unverified = p_stated is not None and p_stated < verify
        attributed = None
        if not (refused or unverified) and parsed.sentences:
            ta = time.perf_counter()
            attributed = attribute(parsed.sentences, [c.text for c in chunks], self.searcher.ctx.embedder.embed,
                                   self.settings.answer.attribute)
            if any(attributed.added):
                added = [s.sources if a else () for s, a in zip(attributed.sentences, attributed.added)]
                parsed = replace(parsed, text=add_markers(parsed.text, added), sentences=attributed.sentences)
            timings["attribute_s"] = time.perf_counter() - ta
        t2 = time.perf_counter()
        sentences = self._check(parsed.sentences, chunks) if not (refused or unverified) else tuple(
            CheckedSentence(s.text, s.sources, None) for s in parsed.sentences)
        if attributed is not None:
            sentences = _with_attribution(sentences, attributed, chunks)
        timings["check_s"] = time.perf_counter() - t2
        timings["total_s"] = time.perf_counter() - t0
        notes = list(evidence.notes)
        if joined:
            notes.append("the draft said the documents do not say, though a later hop added sources; asked again "
                         "to join facts across them ([multihop] join)")
        answer_text = parsed.text
        withdrawn = unverified or (self.settings.answer.refuse_unsupported and should_withdraw(sentences, refused))
        if unverified:
            notes.append(f"the draft answer was withdrawn: the LLM judged that the sources do not state it "
                         f"(P(yes) {p_stated:.2f} < [answer] verify {verify:g}; draft: {parsed.text[:160]!r})")
            refused, answer_text = True, REFUSAL
        elif withdrawn:
            checked = [s for s in sentences if s.supported is not None]
            notes.append(f"the draft answer was withdrawn: none of its {len(checked)} cited sentence(s) is "
                         f"supported by the sources it cites (draft: {parsed.text[:160]!r})")
            refused, answer_text = True, REFUSAL
        citations = () if withdrawn else tuple(self._citation(n, chunks[n - 1], sentences) for n in parsed.cited)
        if gated:
            notes.append(f"not answered: the LLM judged that the sources do not contain the answer "
                         f"(P(yes) {p_answerable:.2f} < [answer] gate {gate:g})")
        if parsed.invalid:
            notes.append("removed citations of sources that do not exist: "
                         + ", ".join(f"[{n}]" for n in parsed.invalid))
        unsupported = [s for s in sentences if s.supported is False]
        if unsupported:
            notes.append(f"{len(unsupported)} sentence(s) not supported by the sources they cite")
        uncited = [s for s in sentences if not s.sources]
        if uncited and not refused:
            notes.append(f"{len(uncited)} sentence(s) cite no source")
        return Answer(question, answer_text, refused, citations, tuple(chunks), sentences, parsed.invalid,
                      evidence.queries, evidence.route.collections, timings, tuple(notes), evidence, withdrawn,
                      p_answerable, p_stated, joined)

    def _joinable(self, evidence: Evidence) -> bool:
        """Whether ``[multihop] join`` applies: on, and a hop after the first found one of the sources."""
        return self.settings.multihop.join and any(
            max(evidence.hops_of.get(c.chunk_id, (1,))) > 1 for c in evidence.chunks)

    def _generate(self, question: str, chunks: Sequence[ScoredChunk], t0: float, timings: dict[str, float],
                  on_token: Callable[[str], None] | None, messages: list[dict[str, str]] | None = None) -> str:
        """Stream the cited answer, noting the time to its first token."""
        parts: list[str] = []
        for delta in self.llm.stream(messages or answer_messages(question, chunks)):
            if not parts:
                timings["first_token_s"] = time.perf_counter() - t0
            parts.append(delta)
            if on_token:
                on_token(delta)
        return "".join(parts).strip()

    def _check(self, sentences: Sequence[CitedSentence], chunks: Sequence[ScoredChunk]) -> tuple[CheckedSentence, ...]:
        out = []
        for s in sentences:
            if not s.sources or not self.settings.answer.check_support:
                out.append(CheckedSentence(s.text, s.sources, None))
                continue
            p = self.llm.yes_probability(support_prompt(s.text, [chunks[n - 1].text for n in s.sources]))
            out.append(CheckedSentence(s.text, s.sources, p >= self.settings.answer.support_threshold, round(p, 4)))
        return tuple(out)

    @staticmethod
    def _citation(n: int, chunk: ScoredChunk, sentences: Sequence[CheckedSentence]) -> Citation:
        verdicts = [s.supported for s in sentences if n in s.sources and s.supported is not None]
        supported = any(verdicts) if verdicts else None
        start, end = chunk.payload.get("start"), chunk.payload.get("end")
        added = all(s.attributed for s in sentences if n in s.sources)
        return Citation(n, chunk.chunk_id, chunk.source, chunk.page,
                        int(start) if start is not None else None, int(end) if end is not None else None, supported,
                        added)

    def close_searchers(self) -> None:
        """Release the collections (the LLM client stays usable, e.g. when it is shared)."""
        for searcher in self.searchers.values():
            searcher.close()

    def close(self) -> None:
        """Release the collections and stop a local LLM server."""
        self.close_searchers()
        self.llm.close()


def explain_lines(answer: Answer) -> list[str]:
    """What ``--explain`` adds about retrieval: every query searched, the route with its scores, expansion, hops."""
    ev = answer.evidence
    if ev is None:
        return []
    lines = [f"queries searched: {' | '.join(ev.queries)}"] if len(ev.queries) > 1 else []
    lines.append(f"route detail: {ev.route.describe()}")
    if ev.expansion.passage:
        lines.append(f"hyde passage: {ev.expansion.passage[:300]}")
    for hop in ev.hops:
        shown = ", ".join(hop.queries[:12]) + (f" (+{len(hop.queries) - 12} more)" if len(hop.queries) > 12 else "")
        what = "linked" if hop.strategy == "links" else "new"
        lines.append(f"hop {hop.n} ({hop.strategy}): {shown or '(nothing to follow)'}; {hop.found} passage(s) {what}")
    if ev.hops or ev.stopped:
        by_hop = ", ".join(f"[{n}] hop " + "+".join(map(str, ev.hops_of.get(c.chunk_id, (1,))))
                           for n, c in enumerate(answer.sources, 1))
        lines.append(f"sources by hop: {by_hop}" + (f"; stopped: {ev.stopped}" if ev.stopped else ""))
    lines.append(f"LLM calls for retrieval: {ev.llm_calls}")
    return lines
