"""Multi-hop retrieval: follow what the first passages point to, within a bound on the hops.

Some questions need two passages where only the first is findable from the question ("the
woman who played Corliss Archer" -> the film's passage names Shirley Temple -> her passage
holds the answer). Two strategies, both bounded by ``[multihop] max_hops``:

* ``links`` (no LLM): the names a top passage mentions (capitalised spans the question does not
  already contain) are looked up by exact words; a passage whose title (first line, first heading
  or file name) is that name counts as linked. On the 500 HotpotQA dev questions this beat
  searching again with the question plus the passage's text (MDR-style, which an untrained
  bi-encoder does poorly): both@10 0.94 against at best 0.90 (single-step 0.85).
* ``llm`` (IRCoT / self-ask): the LLM reads the best passages so far and writes the query for the
  missing fact, or says DONE.

Every hop's finds are merged into one ranking: the first hop's best passage stays on top
(``keep``), the rest are ordered by their first-hop score (min-max scaled to 0..1) plus what the
later hops add (a linked passage gets ``link_bonus``, halved for each lower-ranked seed; an LLM
hop adds half its own scaled score), so a passage that both matches the question and is linked wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence

from rag.core import prompts
from rag.core.config import MultihopConfig
from rag.core.entities import entity_keys, mentions, norm
from rag.query.merge import labelled, minmax
from rag.query.rerank import RERANK
from rag.core.records import ScoredChunk

if TYPE_CHECKING:
    from rag.core.llm import Llm
    from rag.query.graph import GraphWalk

HOP_DEPTH = 50  # first-hop candidates whose question scores enter the merge
LINK_DEPTH = 3  # results looked at per followed name (the first titled with it is linked)
MAX_MENTIONS = 20  # names followed per seed passage
LLM_HOP_DEPTH = 20
LLM_HOP_WEIGHT = 0.5  # an LLM hop's scaled scores count half: a wrong guess of the model should not take the top
LLM_READ = 3  # passages the LLM reads before writing the next query (prompt tokens are most of its cost on CPU)
LLM_READ_CHARS = 400
MULTIHOP = "multihop"
MIN_REACH = 0.03  # graph: a walk's best reached passage gains the full weight only with this share of the walk's mass
ABOUT_SHARE = 1.0  # graph: what a passage about another name of the question gains, times graph_weight
TITLED_SHARE = 1.0  # graph: a passage about a name the best passage mentions gains this x graph_weight x its match
ABOUT_PASSAGES = 1  # graph: passages taken per such name
SUBJECT_DEPTH = 10  # graph: first-hop passages checked for being about names the question holds

# Search(text, k, retriever_name_or_None) -> ranking, best first.
Search = Callable[[str, int, str | None], Sequence[ScoredChunk]]


class Graph(Protocol):
    """The entity graphs of the searched collections (``rag.query.route.CollectionSearch``)."""

    def walk(self, question: str, seeds: Mapping[str, float]) -> GraphWalk: ...

    def passages(self, ids: Sequence[str]) -> list[ScoredChunk]: ...

    def about(self, text: str) -> Mapping[str, str]: ...

@dataclass(frozen=True, slots=True)
class Hop:
    """One retrieval round: its queries (names followed, or the LLM's query) and what it contributed.

    ``found``: links: passages linked to a followed name; graph: passages a walk reached; llm: passages no
    earlier hop had found.
    """

    n: int
    strategy: str
    queries: tuple[str, ...]
    found: int

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` shape (under ``retrieval``)."""
        return {"n": self.n, "strategy": self.strategy, "queries": list(self.queries), "found": self.found}


@dataclass(frozen=True, slots=True)
class MultiHopResult:
    """The merged evidence of every hop, the hops themselves, and what they cost."""

    chunks: tuple[ScoredChunk, ...]
    hops: tuple[Hop, ...]
    llm_calls: int = 0
    stopped: str = ""
    notes: tuple[str, ...] = ()
    hops_of: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # chunk id -> the hops that found or linked it
    via: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # graph: chunk id -> the names that carried it


def chunk_title(chunk: ScoredChunk) -> str:
    """The first line of a document's first chunk when it is short (a title line), else ''."""
    if chunk.chunk_index not in (0, None):
        return ""
    first = chunk.text.strip().split("\n", 1)[0].strip()
    return first if 0 < len(first) <= 100 else ""


def chunk_titles(chunk: ScoredChunk) -> set[str]:
    """Normalised names a passage goes by: its title line, its first heading, its file name."""
    names = {chunk_title(chunk), PurePath(chunk.source).stem.replace("_", " ")}
    headings = chunk.headings
    if headings:
        names.add(str(headings[0]))
    return {n for n in (norm(x) for x in names) if n}


def names_match(name: str, titles: set[str]) -> bool:
    """Whether a mentioned name is one of the titles: equal, holding a title, or covering half a title's words.

    'Walt Disney World Dolphin Hotel' names 'Walt Disney World Dolphin'; 'Catwoman' names 'Catwoman (film)';
    'Tell' does not name 'Kiss and Tell'.
    """
    n = norm(name)
    if not n:
        return False
    for t in titles:
        if n == t or (len(t) > 3 and f" {t} " in f" {n} "):
            return True
        if len(n) > 3 and f" {n} " in f" {t} " and 2 * len(n.split()) >= len(t.split()):
            return True
    return False


def _scaled(chunks: Sequence[ScoredChunk]) -> dict[str, float]:
    """Scores min-max scaled to 0..1 within one ranking (1 for all when they are equal), never rising down it.

    A reranked ranking holds two scales: the reranked head's blended z-scores (negative below its
    mean) above the tail's fused scores (about 0.02); read as they are, the tail would outrank half
    the head. Each score is capped at the one above it, so the ranking's order is the pool's.
    """
    capped: dict[str, float] = {}
    ceiling = float("inf")
    for c in chunks:
        ceiling = min(ceiling, c.score)
        capped[c.chunk_id] = ceiling
    return minmax(chunks, lambda c: capped[c.chunk_id])


def _match(chunks: Sequence[ScoredChunk]) -> dict[str, float]:
    """How well each first-hop passage matches the question, on one scale for all, scaled to 0..1.

    A reranked ranking's head carries blended reranker scores and its tail the retrieval's, and
    ``_scaled`` gives the whole tail 0, so no passage beyond the reranked head could count as
    matching: there, every passage's retrieval score (the one the tail is ranked by, e.g. ``hybrid``,
    recorded under the retriever's name before reranking). Otherwise the ranking's own scores.
    """
    tail = [c for c in chunks if RERANK not in c.scores]
    if tail and len(tail) < len(chunks):
        last = tail[-1]
        keys = [k for k, v in last.scores.items() if k != RERANK and v == last.score]
        key = next((k for k in keys if all(k in c.scores for c in chunks)), None)
        if key is not None:
            return minmax(chunks, lambda c: c.scores[key])
    return _scaled(chunks)


class _Merge:
    """The evidence pool across hops: a running score per passage.

    Hops add amounts one passage at a time (and read the ranking between hops), so this pool
    accumulates itself rather than through ``rag.query.merge.merge``; it scales and labels with that module.
    """

    def __init__(self, first: Sequence[ScoredChunk], keep: int) -> None:
        self.head = [c.chunk_id for c in first[:keep]]
        self.total = _scaled(first)
        self.chunks = {c.chunk_id: c for c in first}
        self.hops_of: dict[str, tuple[int, ...]] = {c.chunk_id: (1,) for c in first}

    def add(self, chunk: ScoredChunk, amount: float, hop: int) -> bool:
        """Add ``amount`` to a passage's score; True when the passage is new to the pool."""
        new = chunk.chunk_id not in self.chunks
        if new:
            self.chunks[chunk.chunk_id] = chunk
        seen = self.hops_of.get(chunk.chunk_id, ())
        self.hops_of[chunk.chunk_id] = seen if hop in seen else (*seen, hop)
        self.total[chunk.chunk_id] = self.total.get(chunk.chunk_id, 0.0) + amount
        return new

    def ranking(self) -> list[ScoredChunk]:
        seq = {cid: i for i, cid in enumerate(self.chunks)}  # ties: the earlier found (hop, seed, mention order) first
        order = self.head + sorted((c for c in self.total if c not in self.head),
                                   key=lambda c: (-self.total[c], seq[c]))
        return labelled([self.chunks[cid] for cid in order], [self.total[cid] for cid in order], MULTIHOP)

    def result(self, hops: Sequence[Hop], llm_calls: int = 0, stopped: str = "") -> MultiHopResult:
        return MultiHopResult(tuple(self.ranking()), tuple(hops), llm_calls, stopped, hops_of=dict(self.hops_of))


def follow_links(question: str, first: Sequence[ScoredChunk], search: Search, config: MultihopConfig) -> MultiHopResult:
    """Hops that follow the names the best passages mention to the passages titled with them (no LLM)."""
    pool = _Merge(first, config.keep)
    asked = question.lower()
    hops: list[Hop] = []
    seeded: set[str] = set()
    for n in range(2, config.max_hops + 1):
        seeds = [c for c in pool.ranking() if c.chunk_id not in seeded][: config.seeds]
        followed: list[str] = []
        credited: set[str] = set()
        for j, seed in enumerate(seeds):
            seeded.add(seed.chunk_id)
            weight = config.link_bonus * 0.5 ** (j + (n - 2))
            own = chunk_title(seed).lower()  # 'Catwoman' in 'Catwoman (video game)' still links to 'Catwoman (film)'
            body = seed.text.strip().split("\n", 1)[-1] if own else seed.text
            names = [m for m in mentions(body) if m.lower() not in asked and m.lower() != own][:MAX_MENTIONS]
            for name in names:
                followed.append(name)
                for hit in search(name, LINK_DEPTH, "sparse"):
                    if hit.chunk_id == seed.chunk_id or hit.chunk_id in credited:
                        continue
                    if names_match(name, chunk_titles(hit)):
                        credited.add(hit.chunk_id)
                        pool.add(hit, weight, n)
                        break  # one passage per name: the best-matching one
        hops.append(Hop(n, "links", tuple(dict.fromkeys(followed)), len(credited)))
        if not credited:
            return pool.result(hops, stopped="no linked passage found")
    return pool.result(hops)


def _proper(question: str) -> Callable[[str], bool]:
    """Whether a name is one of the question's proper names (capitalised in it), or inside one."""
    proper = [f" {k} " for k in entity_keys(question)]
    return lambda name: any(f" {name} " in k for k in proper)


def _about_others(question: str, found: GraphWalk, about: set[str], first: Sequence[ScoredChunk]) -> dict[str, str]:
    """Passages about the question's proper names (capitalised in it) that none of the first hop's best passages
    is about, the best-ranked first."""
    rank = {c.chunk_id: i for i, c in enumerate(first)}
    is_proper = _proper(question)
    out: dict[str, str] = {}  # chunk id -> the name it is about
    for name in found.names:
        if name in about or not is_proper(name):
            continue
        ids = [cid for cid, subject in found.subjects.items() if subject == name]
        ids.sort(key=lambda cid: (rank.get(cid, len(rank)), -found.scores.get(cid, 0.0)))
        out.update((cid, name) for cid in ids[:ABOUT_PASSAGES])
    return out


def walk_graph(question: str, first: Sequence[ScoredChunk], graph: Graph, config: MultihopConfig) -> MultiHopResult:
    """One hop through the entity graph: a walk from each of the best passages (no LLM).

    Each of the ``graph_seeds`` best first-hop passages starts a walk of its own; every passage a walk
    reaches gains ``graph_weight`` (halved for each lower-ranked seed) times its walk score over the
    best reached one's (or ``MIN_REACH`` of the walk's mass, when no passage is reached that
    strongly), so a passage that matches the question and shares rare names with the best passages
    rises, and one only the graph finds can enter. The seeds themselves gain nothing. When two or
    more of the best passages are each about a proper name the question holds (a comparison: 'Were X
    and Y of the same nationality?'; a lower-case term it names is no side of one), the question has
    found its passages already and the walk stays out.
    Instead, the best of them about each such name gains as much as the walk's best reached passage,
    so both sides reach the top few. When exactly one is, the passage about each other proper name
    of the question (its first name is that name) gains as much (HippoRAG's link from the question's
    entities to the passages about them): the comparison whose first hop found only one side. Last,
    the passages about a name the best passage mentions in any case ('instruction scheduling', a
    lower-case title) gain ``TITLED_SHARE`` x ``graph_weight`` x how well they match the question
    (``_match``): linked and matching the question, like ``links`` without needing capitals.
    """
    pool = _Merge(first, config.keep)
    seeds = [c.chunk_id for c in first[: config.graph_seeds]]
    is_proper = _proper(question)
    names: dict[str, None] = {}
    via: dict[str, tuple[str, ...]] = {}
    credited: set[str] = set()
    about_others: dict[str, str] = {}
    for j, seed in enumerate(seeds):
        found = graph.walk(question, {seed: 1.0})
        if found.note:
            return replace(pool.result([], stopped=found.note), notes=(found.note,))
        names.update(dict.fromkeys(found.names))
        # the best passages' subjects that the question names as proper names ('progressive coding' is no side
        # of a comparison)
        subject = {c.chunk_id: found.subjects[c.chunk_id] for c in first[:SUBJECT_DEPTH]
                   if c.chunk_id in found.subjects and is_proper(found.subjects[c.chunk_id])}
        about = set(subject.values())
        if len(about) >= 2:  # 'Were X and Y of the same nationality?': the question already names its passages
            best: dict[str, ScoredChunk] = {}
            for c in first[:SUBJECT_DEPTH]:  # the best passage about each of them rises, the walk stays out
                best.setdefault(subject.get(c.chunk_id, ""), c)
            lifted = {c.chunk_id: (name,) for name, c in best.items() if name and c.chunk_id not in pool.head}
            for cid in lifted:
                pool.add(pool.chunks[cid], config.graph_weight * ABOUT_SHARE, 2)
            result = pool.result([Hop(2, "graph", tuple(names), 0)],
                                 stopped=f"the best passages are about {len(about)} names the question holds")
            return replace(result, via=lifted)
        if len(about) == 1 and j == 0:  # the question names more than one thing: fetch what the others are about
            about_others = _about_others(question, found, about, first)
        reached = {cid: v for cid, v in found.scores.items() if cid not in seeds}
        top = max(max(reached.values(), default=0.0), MIN_REACH)
        if top <= 0:
            continue
        missing = [cid for cid in reached if cid not in pool.chunks]
        known = {c.chunk_id: c for c in graph.passages(missing)} if missing else {}
        weight = config.graph_weight * 0.5 ** j
        for cid, score in reached.items():
            chunk = pool.chunks.get(cid) or known.get(cid)
            if chunk is not None:
                pool.add(chunk, weight * score / top, 2)
                credited.add(cid)
                if cid in found.via and cid not in via:
                    via[cid] = found.via[cid]
    if first:  # the passages about a name the best passage mentions, in any case ('instruction scheduling'): the
        # title lookup of `links` without capitals; each gains as much as it matches the question
        match = _match(first)
        for cid, name in graph.about(first[0].text).items():
            if match.get(cid, 0.0) > 0 and cid not in pool.head and cid != first[0].chunk_id and name not in names:
                pool.add(pool.chunks[cid], config.graph_weight * TITLED_SHARE * match[cid], 2)
                credited.add(cid)
                if name not in via.get(cid, ()):
                    via[cid] = (*via.get(cid, ()), name)
    extra = [cid for cid in about_others if cid not in pool.head]
    missing = [cid for cid in extra if cid not in pool.chunks]
    known = {c.chunk_id: c for c in graph.passages(missing)} if missing else {}
    for cid in extra:  # a passage about another name of the question: as much as the walk's best reached one
        chunk = pool.chunks.get(cid) or known.get(cid)
        if chunk is not None:
            pool.add(chunk, config.graph_weight * ABOUT_SHARE, 2)
            credited.add(cid)
            via.setdefault(cid, (about_others[cid],))
    if not credited:
        return pool.result([Hop(2, "graph", tuple(names), 0)], stopped="the graph links none of the passages")
    carried = [k for keys in via.values() for k in keys]
    result = pool.result([Hop(2, "graph", tuple(dict.fromkeys((*names, *carried))), len(credited))])
    return replace(result, via={cid: via[cid] for cid in result.hops_of if cid in via})


def next_query_messages(question: str, passages: Sequence[ScoredChunk], asked: Sequence[str]) -> list[dict[str, str]]:
    """Chat messages asking for the search query of the missing fact, or DONE (self-ask / IRCoT style)."""
    shown = "\n\n".join(prompts.NEXT_HOP_PASSAGE.format(text=" ".join(c.text.split())[:LLM_READ_CHARS])
                        for c in passages)
    earlier = "".join(prompts.NEXT_HOP_ASKED.format(query=q) for q in asked)
    return [
        {"role": "system", "content": prompts.NEXT_HOP_SYSTEM},
        {"role": "user", "content": prompts.NEXT_HOP_USER.format(question=question.strip(), asked=earlier,
                                                                 passages=shown)},
    ]


def parse_next_query(reply: str) -> str:
    """The query in an LLM reply, or '' when the model said DONE (or wrote nothing usable)."""
    for line in reply.strip().splitlines():
        text = re.sub(r"^\s*(?:next\s+)?(?:search\s+)?query\s*:\s*", "", line.strip(), flags=re.IGNORECASE)
        text = text.strip().strip('"').strip("'").strip()
        if not text:
            continue
        if re.fullmatch(r"done\W*", text, re.IGNORECASE) or text.upper().startswith("DONE"):
            return ""
        return text
    return ""


def ask_llm_hops(question: str, first: Sequence[ScoredChunk], search: Search, llm: Llm,
                 config: MultihopConfig) -> MultiHopResult:  # fmt: skip
    """Hops whose queries the LLM writes after reading the evidence so far; stops on DONE or a repeated query."""
    pool = _Merge(first, config.keep)
    hops: list[Hop] = []
    asked: list[str] = [question]
    calls = 0
    for n in range(2, config.max_hops + 1):
        reply = llm.chat(next_query_messages(question, pool.ranking()[:LLM_READ], asked[1:]), max_tokens=48,
                         temperature=0.0)
        calls += 1
        query = parse_next_query(reply)
        if not query:
            return pool.result(hops, calls, "the LLM had enough evidence")
        if norm(query) in {norm(q) for q in asked}:
            return pool.result(hops, calls, "the LLM repeated a query")
        asked.append(query)
        results = list(search(query, LLM_HOP_DEPTH, None))
        scaled = _scaled(results)
        found = sum(pool.add(c, LLM_HOP_WEIGHT * scaled[c.chunk_id], n) for c in results)
        hops.append(Hop(n, "llm", (query,), found))
    return pool.result(hops, calls)


def multihop(question: str, first: Sequence[ScoredChunk], search: Search, config: MultihopConfig,
             llm: Llm | None = None, graph: Graph | None = None) -> MultiHopResult:  # fmt: skip
    """More hops after ``first`` (the first hop's ranking, about ``HOP_DEPTH`` deep) as ``[multihop] mode`` says."""
    if config.mode == "off" or config.max_hops < 2 or not first:
        return MultiHopResult(tuple(first), ())
    if config.mode == "graph":
        if graph is None:
            return MultiHopResult(tuple(first), (), notes=("multi-hop mode 'graph' needs the collection's graph; one hop only",))
        return walk_graph(question, first, graph, config)
    if config.mode == "llm":
        if llm is None:
            return MultiHopResult(tuple(first), (), notes=("multi-hop mode 'llm' needs an LLM; one hop only",))
        return ask_llm_hops(question, first, search, llm, config)
    return follow_links(question, first, search, config)

