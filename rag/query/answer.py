"""Grounded answering: retrieve, ask the LLM with numbered sources, validate and check the citations."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from rag.query.attribute import Attributed, attribute
from rag.query.cite import (
    REFUSAL,
    CheckedSentence,
    Citation,
    CitedSentence,
    SentenceQuote,
    add_markers,
    is_refusal,
    parse_answer,
)
from rag.core.config import Settings
from rag.core.errors import StoreError
from rag.core.llm import Llm
from rag.core.records import ScoredChunk
from rag.query.compact import CompactContext, compact_sources, token_counter
from rag.query.decide import after_draft, after_gate, after_verify, asks_direct, asks_gate, asks_verify, final
from rag.query.expand import Expansion, expand_query, search_expanded
from rag.query.generate import generate, stream_text
from rag.query.multihop import HOP_DEPTH, Hop, multihop
from rag.query.checker import Checker, make_checker
from rag.query.prompt import answer_messages, direct_messages, join_messages
from rag.query.route import DEFAULT_COLLECTION, CollectionSearch, Route, choose_route, routable
from rag.query.search import Searcher


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """The passages an answer is built on, and how they were found: route, expansions, hops, cost."""

    chunks: tuple[ScoredChunk, ...]
    queries: tuple[str, ...]
    route: Route
    expansion: Expansion
    hops: tuple[Hop, ...] = ()
    hops_of: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    via: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # graph hop: the names that carried a passage
    added: frozenset[str] = frozenset()  # sources a later hop brought in: not among the first hop's best k
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
            "source_via": [list(self.via.get(c.chunk_id, ())) for c in self.chunks],
            "llm_calls": self.llm_calls,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
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
    answerable_probability: float | None = None  # the gate's question's P(yes); None when gate and direct are off
    verified_probability: float | None = None  # the [answer] verify check's P(yes); None when not asked
    joined: bool = False  # the draft refused and [multihop] join asked again (the answer is the retry's)
    direct: bool = False  # the draft was asked for without a refusal option ([answer] direct)
    context: CompactContext | None = None  # what the LLM read of each source with [answer] context_tokens; None: all
    checker: str = ""  # who judged support (verify and the sentence checks): "verifier (...)", "llm"; "" not asked
    checker_note: str = ""  # why the LLM judged when the verifier was asked for (no weights)

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
                 "start": c.start, "end": c.end, "text": c.text}
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
            "direct": self.direct,
            "context": None if self.context is None else self.context.as_dict(),
            "checker": self.checker or None,
            "retrieval": self.evidence.as_dict() if self.evidence is not None else None,
            "explain": explain_lines(self),
        }


def _with_attribution(sentences: Sequence[CheckedSentence], attributed: Attributed,
                      chunks: Sequence[ScoredChunk]) -> tuple[CheckedSentence, ...]:
    """Mark added citations and attach each sentence's quote, with offsets into the source document."""
    out = []
    for s, added, q in zip(sentences, attributed.added, attributed.quotes):
        quote = None
        if q is not None:
            chunk = chunks[q.source - 1]
            offset = chunk.start
            quote = SentenceQuote(n=q.source, start=None if offset is None else offset + q.start,
                                  end=None if offset is None else offset + q.end, text=chunk.text[q.start:q.end],
                                  similarity=q.similarity)
        out.append(replace(s, attributed=added, quote=quote))
    return tuple(out)


class Answerer:
    """Answers questions with cited, checked sentences, from one collection or the ones a router picks.

    With ``collection`` given, only that collection is searched. Without it, questions are routed
    among the home's collections when any carries a description (``[route]``), else they go to
    ``default``. ``[query] expand`` and ``[multihop] mode`` add expansions and hops.
    """

    def __init__(self, settings: Settings, home: Path, collection: str | None = None, llm: Llm | None = None,
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
        self._checker: Checker | None = None
        if settings.answer.checker == "verifier":  # asked for by name: a missing verifier fails before any LLM work
            self._checker = make_checker(settings.answer, llm)

    @property
    def checker(self) -> Checker:
        """Who judges support ([answer] checker), loaded on first use (the verifier once per process)."""
        if self._checker is None:
            self._checker = make_checker(self.settings.answer, self.llm)
        return self._checker

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
        hops = multihop(query, first, search.retrieve, hop_cfg, self.llm, graph=search)
        if hopping:
            timings["hops_s"] = time.perf_counter() - t3
        timings["retrieve_s"] = time.perf_counter() - t0
        queries = (query, *expansion.queries, *(q for h in hops.hops if h.strategy == "llm" for q in h.queries))
        chosen = tuple(hops.chunks[:k])
        added = frozenset(c.chunk_id for c in chosen) - {c.chunk_id for c in first[:k]} if hops.hops else frozenset()
        return Evidence(chunks=chosen, queries=queries, route=route, expansion=expansion,
                        hops=hops.hops, hops_of=hops.hops_of, via=hops.via, added=added,
                        llm_calls=route.llm_calls + expansion.llm_calls + hops.llm_calls, timings=timings,
                        notes=(*self.notes, *search.notes, *hops.notes, *((route.note,) if route.note else ())),
                        stopped=hops.stopped)

    def ask(self, question: str, on_token: Callable[[str], None] | None = None,
            query: str | None = None, evidence: Evidence | None = None) -> Answer:
        """Answer ``question``; ``query`` (e.g. a rewritten follow-up) is what gets searched.

        ``evidence`` already gathered (e.g. by an evaluation) is used as it is instead of searching.
        The stages (gate, draft, join, verify, attribution, support checks) run here; what their
        outcomes mean (refuse, ask again, withdraw, which notes) is decided in ``rag.query.decide``.
        """
        t0 = time.perf_counter()
        evidence = evidence if evidence is not None else self.gather(query or question)
        timings: dict[str, float] = dict(evidence.timings)
        chunks = evidence.chunks
        cfg = self.settings.answer
        context = self._compact(query or question, chunks, timings)
        shown = None if context is None else context.texts
        p_answerable = None
        if asks_gate(cfg.gate, len(chunks), cfg.direct):
            tg = time.perf_counter()
            p_answerable = round(self.checker.answerable(question, chunks, shown), 4)
            timings["gate_s"] = time.perf_counter() - tg
        gated = after_gate(p_answerable, cfg.gate)
        direct = not gated and asks_direct(p_answerable, cfg.direct, cfg.verify)
        t1 = time.perf_counter()
        if gated:
            text = stream_text((REFUSAL,), t0, timings, on_token)
        else:
            messages = (direct_messages if direct else answer_messages)(question, chunks, shown)
            text = generate(self.llm, messages, t0, timings, on_token)
        joined = after_draft(gated=gated, draft_refused=is_refusal(text), verify=cfg.verify,
                             joinable=self._joinable(evidence), direct=direct)
        if joined:  # the sources came from several hops: ask once more, to join them (verified below)
            if on_token:
                on_token("\n\n")
            text = generate(self.llm, join_messages(question, chunks, shown), t0, {}, on_token)
        timings["generate_s"] = time.perf_counter() - t1
        parsed = parse_answer(text, len(chunks))
        refused = is_refusal(text)
        p_stated = None
        if asks_verify(cfg.verify, refused):  # against the passages it cites, or all of them when it cites none
            tv = time.perf_counter()
            read = [chunks[n - 1].text for n in sorted(parsed.cited)] or [c.text for c in chunks]
            p_stated = round(self.checker.stated(question, parsed.text, read), 4)
            timings["verify_s"] = time.perf_counter() - tv
        verify_at = self.checker.verify_threshold if p_stated is not None else cfg.verify
        checking = after_verify(refused=refused, p_stated=p_stated, verify=verify_at)
        attributed = None
        if checking and parsed.sentences:
            ta = time.perf_counter()
            attributed = attribute(parsed.sentences, [c.text for c in chunks], self.searcher.ctx.embedder.embed,
                                   cfg.attribute)
            if any(attributed.added):
                added = [s.sources if a else () for s, a in zip(attributed.sentences, attributed.added)]
                parsed = replace(parsed, text=add_markers(parsed.text, added), sentences=attributed.sentences)
            timings["attribute_s"] = time.perf_counter() - ta
        t2 = time.perf_counter()
        sentences = self._check(parsed.sentences, chunks) if checking else tuple(
            CheckedSentence(text=s.text, sources=s.sources, supported=None) for s in parsed.sentences)
        if attributed is not None:
            sentences = _with_attribution(sentences, attributed, chunks)
        timings["check_s"] = time.perf_counter() - t2
        timings["total_s"] = time.perf_counter() - t0
        checked = p_stated is not None or p_answerable is not None or any(s.supported is not None for s in sentences)
        decision = final(draft=parsed.text, refused=refused, sentences=sentences, invalid=parsed.invalid,
                         gate=cfg.gate, p_answerable=p_answerable, joined=joined, verify=verify_at,
                         checker=self.checker.name if checked else "llm",
                         p_stated=p_stated, refuse_unsupported=cfg.refuse_unsupported, direct=cfg.direct,
                         directed=direct)
        citations = () if decision.withdrawn else tuple(
            self._citation(n, chunks[n - 1], sentences) for n in parsed.cited)
        return Answer(question=question, answer=REFUSAL if decision.withdrawn else parsed.text,
                      refused=decision.refused, citations=citations, sources=tuple(chunks), sentences=sentences,
                      invalid_citations=parsed.invalid, queries=evidence.queries, route=evidence.route.collections,
                      timings=timings, notes=(*evidence.notes, *decision.notes), evidence=evidence,
                      withdrawn=decision.withdrawn, answerable_probability=p_answerable,
                      verified_probability=p_stated, joined=joined, direct=direct, context=context,
                      checker=self.checker.label if checked else "",
                      checker_note=self.checker.note if checked else "")

    def _compact(self, query: str, chunks: Sequence[ScoredChunk], timings: dict[str, float]) -> CompactContext | None:
        """What the LLM reads of each source under ``[answer] context_tokens`` (None: off, the whole passages)."""
        budget = self.settings.answer.context_tokens
        if not budget or not chunks:
            return None
        tc = time.perf_counter()
        embedder = self.searcher.ctx.embedder
        context = compact_sources(query, [c.text for c in chunks], budget, embedder.embed, token_counter(embedder))
        timings["compact_s"] = time.perf_counter() - tc
        return context

    def _joinable(self, evidence: Evidence) -> bool:
        """Whether ``[multihop] join`` applies: on, and a hop after the first brought in one of the sources.

        A source the first hop already ranked among its best k does not count: then the question alone
        found the evidence, and a refusal stands as it is.
        """
        return self.settings.multihop.join and any(c.chunk_id in evidence.added for c in evidence.chunks)

    def _check(self, sentences: Sequence[CitedSentence], chunks: Sequence[ScoredChunk]) -> tuple[CheckedSentence, ...]:
        out = []
        for s in sentences:
            if not s.sources or not self.settings.answer.check_support:
                out.append(CheckedSentence(text=s.text, sources=s.sources, supported=None))
                continue
            p = self.checker.supported(s.text, [chunks[n - 1].text for n in s.sources])
            out.append(CheckedSentence(text=s.text, sources=s.sources,
                                       supported=p >= self.checker.support_threshold,
                                       support_probability=round(p, 4)))
        return tuple(out)

    @staticmethod
    def _citation(n: int, chunk: ScoredChunk, sentences: Sequence[CheckedSentence]) -> Citation:
        verdicts = [s.supported for s in sentences if n in s.sources and s.supported is not None]
        supported = any(verdicts) if verdicts else None
        added = all(s.attributed for s in sentences if n in s.sources)
        return Citation(n=n, chunk_id=chunk.chunk_id, source=chunk.source, page=chunk.page, start=chunk.start,
                        end=chunk.end, supported=supported, attributed=added)

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
        what = {"links": "linked", "graph": "reached"}.get(hop.strategy, "new")
        lines.append(f"hop {hop.n} ({hop.strategy}): {shown or '(nothing to follow)'}; {hop.found} passage(s) {what}")
    if ev.hops or ev.stopped:
        by_hop = ", ".join(f"[{n}] hop " + "+".join(map(str, ev.hops_of.get(c.chunk_id, (1,))))
                           + (f" via {' / '.join(ev.via[c.chunk_id])}" if c.chunk_id in ev.via else "")
                           for n, c in enumerate(answer.sources, 1))
        lines.append(f"sources by hop: {by_hop}" + (f"; stopped: {ev.stopped}" if ev.stopped else ""))
    lines.append(f"LLM calls for retrieval: {ev.llm_calls}")
    if answer.checker:
        lines.append(f"support checked by: {answer.checker}" + (f" ({answer.checker_note})" if answer.checker_note else ""))
    if answer.context is not None:
        c = answer.context
        lines.append(f"compact prompt: the LLM read {c.tokens} of the sources' {c.full_tokens} tokens "
                     f"([answer] context_tokens {c.budget})")
    return lines
