"""Entity-graph multi-hop ([multihop] mode = "graph"): names stored at ingest, the walk, changes, --explain."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from ingest.pipeline import Ingestor
from rag.core.config import Settings
from rag.core.entities import ENTITIES, ENTITIES_VERSION, chunk_keys, entity_keys
from rag.core.entity_graph import (
    ALIAS_MIN_WORDS, ALIAS_WEIGHT, GRAPH_FILE, MAX_DF_SHARE, MIN_MAX_DF, SUBJECT_WEIGHT, ChunkNames, GraphArrays,
    build_edges, manifest_states, read_store, sync_graph,
)
from rag.core import entity_graph
from rag.core.home import collection_paths
from rag.core.records import ScoredChunk
from rag.query.answer import Answerer
from rag.core.store import StoredPoint
from rag.query.graph import EntityGraph, stored_keys
from rag.query.search import Searcher
from tests.conftest import write
from tests.test_cli import rag
from tests.test_multihop import LINKED_DOCS, QUESTION

# The same bridge question as test_multihop, on documents with no title line and neutral file names:
# nothing for `links` to follow, while the passages still share the names they mention.
UNTITLED = {f"doc{i}.txt": text.split("\n\n", 1)[1] for i, text in enumerate(LINKED_DOCS.values())}
FILM, SHIRLEY = "doc0.txt", "doc1.txt"


@pytest.fixture(scope="module")
def untitled_home(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("untitled")
    for name, text in UNTITLED.items():
        write(root / "docs" / name, text)
    Ingestor(GRAPH, root / "home", embedder=embedder).run([root / "docs"])
    return root / "home"


def settings(mode: str, **multihop: object) -> Settings:
    return Settings.model_validate({"multihop": {"mode": mode, **multihop}, "answer": {"check_support": False}})


GRAPH = Settings.model_validate({"multihop": {"mode": "graph"}})  # the ingest keeps the graph's file in step


def names(chunks: tuple[ScoredChunk, ...]) -> list[str]:
    return [Path(c.source).name for c in chunks]


def test_entity_keys_are_normalised_names() -> None:
    text = "Kiss and Tell (1945 film) starred Shirley Temple. In 1945 Shirley Temple was 17. A B."
    assert entity_keys(text) == ["kiss and tell", "shirley temple"]  # once each; no year, no one-letter name
    assert entity_keys("no names here at all.") == []


def test_a_titled_documents_first_chunk_is_about_its_title_in_any_case() -> None:
    entry = "instruction scheduling\n\n<compiler> Generally, a phase that reorders MIPS code. However it is slow."
    assert chunk_keys(entry, chunk_index=0) == ["instruction scheduling", "mips"]  # no 'Generally', 'However'
    assert chunk_keys(entry, chunk_index=1) == ["mips"]  # a later chunk: its first line is no title
    assert chunk_keys("The Beatles\n\nThe Beatles were a band from Liverpool.", chunk_index=0) == [
        "beatles", "liverpool"]  # the title as its mentions are named
    assert chunk_keys("one line, no title: Alan Turing.", chunk_index=0) == ["alan turing"]
    assert chunk_keys("Kiss and Tell (1945 film)\n\nA film with Shirley Temple.", "Films", 0)[:2] == [
        "kiss and tell", "films"]


def test_walk_reaches_a_passage_through_a_shared_rare_name() -> None:
    docs = {
        "film": "Kiss and Tell is a 1945 American comedy film starring Shirley Temple as Corliss Archer.",
        "actress": "Shirley Temple Black was an American actress, later Chief of Protocol.",
        "other": "Janet Waldo was an American voice actress.",
        "far": "The Duke of Wellington was a British soldier.",
    }
    graph = EntityGraph.build((k, entity_keys(v)) for k, v in docs.items())
    assert "shirley temple black" in graph.col and "shirley temple" in graph.col
    walk = graph.walk("Which position did the star of Kiss and Tell hold?", {"film": 1.0})
    assert walk.names == ("kiss and tell",)
    # the actress's own name holds the film's 'shirley temple' (an alias edge): she is reached
    assert walk.scores["actress"] > walk.scores.get("other", 0.0)
    assert "far" not in walk.scores  # shares no name with anything reached
    assert walk.via["actress"][0] == "shirley temple"
    assert graph.walk("anything", {}).scores == {}  # no seed and no name: nothing to walk from


def test_very_common_names_link_nothing() -> None:
    chunks = [(f"c{i}", ["american", f"person {i}"]) for i in range(60)]
    graph = EntityGraph.build(chunks)
    assert "american" not in graph.col  # in every chunk: above the document-frequency cap
    assert set(graph.walk("q", {"c0": 1.0}).scores) == {"c0"}  # so c0 reaches no other chunk


def test_ingest_stores_names_and_graph_finds_the_bridge_without_titles(untitled_home: Path) -> None:
    searcher = Searcher(Settings(), untitled_home, rerank=False)
    try:
        payloads = dict(searcher.ctx.store.scroll())
        assert all(isinstance(p.get(ENTITIES), list) for p in payloads.values())
        film = next(p for p in payloads.values() if p["source"].endswith(FILM))
        assert "shirley temple" in film[ENTITIES] and "kiss and tell" in film[ENTITIES]
    finally:
        searcher.close()

    single = Answerer(settings("off"), untitled_home, llm=object(), rerank=False)
    links = Answerer(settings("links", link_bonus=1.0), untitled_home, llm=object(), rerank=False)
    graph = Answerer(settings("graph", graph_weight=1.0), untitled_home, llm=object(), rerank=False)
    try:
        one = single.gather(QUESTION, 3)
        linked = links.gather(QUESTION, 3)
        two = graph.gather(QUESTION, 3)
    finally:
        for a in (single, links, graph):
            a.close_searchers()
    assert SHIRLEY not in names(one.chunks)
    assert SHIRLEY not in names(linked.chunks)  # no titles: nothing for links to follow
    assert names(two.chunks)[0] == names(one.chunks)[0]  # the first hop's best passage stays on top
    assert SHIRLEY in names(two.chunks)
    hop = two.hops[0]
    assert hop.strategy == "graph" and hop.found >= 1 and two.llm_calls == 0
    assert "kiss and tell" in hop.queries and "corliss archer" in hop.queries  # the question's names
    shirley = next(c for c in two.chunks if c.source.endswith(SHIRLEY))
    assert two.hops_of[shirley.chunk_id] in ((2,), (1, 2)) and "shirley temple" in two.via[shirley.chunk_id]
    trace = two.as_dict()
    assert trace["source_via"][names(two.chunks).index(SHIRLEY)][0] == "shirley temple"
    json.dumps(trace)


def test_graph_follows_every_change_of_the_collection(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    docs, home = tmp_path / "docs", tmp_path / "home"
    write(docs / "a.txt", "Ada Lovelace worked with Charles Babbage on the Analytical Engine.")
    write(docs / "b.txt", "Charles Babbage designed the Difference Engine in London.")
    write(docs / "c.txt", "Grace Hopper wrote the first compiler.")
    Ingestor(GRAPH, home, embedder=embedder).run([docs])
    searcher = Searcher(Settings(), home, rerank=False)
    try:
        first = searcher.entity_graph()
        assert "charles babbage" in first.col and "grace hopper" in first.col
        assert searcher.entity_graph() is first  # unchanged collection: the same graph, not rebuilt

        write(docs / "c.txt", "Grace Hopper worked with Charles Babbage's ideas at Harvard.")
        (docs / "b.txt").unlink()
        Ingestor(GRAPH, home, embedder=embedder).run([docs])
        second = searcher.entity_graph()
        assert second is not first
        by_source = {Path(p["source"]).name: cid for cid, p in searcher.ctx.store.scroll()}
        assert set(by_source) == {"a.txt", "c.txt"} and set(second.ids) == set(by_source.values())
        reached = second.walk("Who else worked on the ideas behind the Analytical Engine?", {by_source["a.txt"]: 1.0})
        assert by_source["c.txt"] in reached.scores  # the new edge, through the changed file
        assert "difference engine" not in second.col  # the deleted file's names are gone
    finally:
        searcher.close()


def test_chunks_without_stored_names_get_them_from_their_text(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path / "docs" / "a.txt", "Ada Lovelace worked with Charles Babbage on the Analytical Engine.")
    write(tmp_path / "docs" / "b.txt", "Charles Babbage designed the Difference Engine in London.")
    write(tmp_path / "docs" / "c.txt", "difference engine\n\nA mechanical calculator of Charles Babbage.")
    Ingestor(GRAPH, tmp_path / "home", embedder=embedder).run([tmp_path / "docs"])
    searcher = Searcher(Settings(), tmp_path / "home", rerank=False)
    try:
        store = searcher.ctx.store
        stored = dict(store.scroll())
        titled = next(p for p in stored.values() if p["source"].endswith("c.txt"))
        assert titled[ENTITIES] == ["difference engine", "charles babbage"]  # its title first, lower case or not
        vectors = store.vectors(list(stored))
        # as a collection ingested before the names were stored: the same points without them
        store.upsert([StoredPoint(cid, vectors[cid][0], vectors[cid][1], vectors[cid][2],
                                  {k: v for k, v in p.items() if k not in (ENTITIES, ENTITIES_VERSION)})
                      for cid, p in stored.items()])
        bare = dict(store.scroll())
        assert all(ENTITIES not in p for p in bare.values())
        assert {cid: stored_keys(p) for cid, p in bare.items()} == {cid: p[ENTITIES] for cid, p in stored.items()}
    finally:
        searcher.close()


@pytest.mark.slow
def test_cli_ask_graph_explain(untitled_home: Path) -> None:
    env = {"RAG_LLM_LOCAL_MODEL": "smollm2-135m-instruct", "RAG_LLM_THREADS": "1", "RAG_LLM_MAX_TOKENS": "16",
           "RAG_RERANK_ENABLED": "false", "RAG_ANSWER_CHECK_SUPPORT": "false"}
    proc = rag(untitled_home, "ask", QUESTION, "--multihop", "graph", "--json", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    assert data["retrieval"]["hops"][0]["strategy"] == "graph" and data["retrieval"]["llm_calls"] == 0
    assert any(s["source"].endswith(SHIRLEY) for s in data["sources"])
    shown = rag(untitled_home, "ask", QUESTION, "--multihop", "graph", "--explain", env=env)
    assert shown.returncode == 0, shown.stderr[-2000:]
    text = " ".join(shown.stdout.split())  # the terminal wraps long lines
    hop_line = text[text.index("hop 2 (graph): "):]
    assert "kiss and tell" in hop_line.split(";")[0] and "via shirley temple" in text


class _Graph:
    """The Graph protocol over one EntityGraph and its chunks (what CollectionSearch gives a real collection)."""

    def __init__(self, docs: dict[str, str]) -> None:
        self.graph = EntityGraph.build((k, chunk_keys(v, chunk_index=0)) for k, v in docs.items())
        self.chunks = {k: ScoredChunk(chunk_id=k, text=v, source=f"/d/{k}.txt", score=0.0) for k, v in docs.items()}

    def walk(self, question: str, seeds):  # type: ignore[no-untyped-def]
        return self.graph.walk(question, seeds)

    def about(self, text: str):  # type: ignore[no-untyped-def]
        return self.graph.about(text)

    def passages(self, ids):  # type: ignore[no-untyped-def]
        return [self.chunks[i] for i in ids if i in self.chunks]


FILMS = {
    "wood": "Ed Wood was an American filmmaker. His friend Conrad Brooks acted in his films.",
    "derrickson": "Scott Derrickson is an American director of horror films.",
    "brooks": "Conrad Brooks is an actor who later directed low-budget films.",
    "other": "Tim Burton directed a film about a filmmaker.",
}


def _first(graph: _Graph, order: list[str]) -> list[ScoredChunk]:
    return [ScoredChunk(chunk_id=k, text=graph.chunks[k].text, source=graph.chunks[k].source, score=1.0 - i / 10)
            for i, k in enumerate(order)]


def test_graph_hop_stays_out_of_a_comparison_and_enters_a_bridge() -> None:
    from rag.query.multihop import walk_graph

    graph = _Graph(FILMS)
    config = settings("graph").multihop
    first = _first(graph, ["wood", "derrickson", "other", "brooks"])
    same = walk_graph("Were Scott Derrickson and Ed Wood of the same nationality?", first, graph, config)
    assert [c.chunk_id for c in same.chunks] == ["wood", "derrickson", "other", "brooks"]  # untouched
    assert "about 2 names the question holds" in same.stopped and same.hops[0].found == 0
    low = walk_graph("Were Scott Derrickson and Ed Wood of the same nationality?",
                     _first(graph, ["wood", "other", "brooks", "derrickson"]), graph, config)
    assert [c.chunk_id for c in low.chunks][:2] == ["wood", "derrickson"]  # each side's passage rises, no walk
    assert low.via["derrickson"] == ("scott derrickson",) and "about 2 names" in low.stopped

    bridge = walk_graph("Which friend of the filmmaker Ed Wood acted in his films?", first, graph, config)
    ranked = [c.chunk_id for c in bridge.chunks]
    assert ranked[0] == "wood" and ranked.index("brooks") < ranked.index("other")  # reached through 'conrad brooks'
    assert bridge.via["brooks"] == ("conrad brooks",) and bridge.hops[0].found >= 1


def test_graph_hop_fetches_the_other_side_of_a_comparison_the_first_hop_missed() -> None:
    from rag.query.multihop import walk_graph

    graph = _Graph({**FILMS, "derrickson": "Scott Derrickson directs horror films."})  # no name shared with Ed Wood
    config = settings("graph").multihop
    first = _first(graph, ["wood", "other", "brooks"])  # nothing about Scott Derrickson
    found = walk_graph("Were Scott Derrickson and Ed Wood of the same nationality?", first, graph, config)
    ranked = [c.chunk_id for c in found.chunks]
    assert ranked[0] == "wood" and ranked.index("derrickson") < ranked.index("other")
    assert found.via["derrickson"] == ("scott derrickson",)
    assert found.hops_of["derrickson"] == (2,) and not found.stopped
    # only proper names count: the same words in lower case are no name the question is about
    lower = walk_graph("were scott derrickson and ed wood of the same nationality?", first, graph, config)
    assert "derrickson" not in [c.chunk_id for c in lower.chunks]


# A dictionary: entries titled in lower case, linked by the terms they use, not by capitalised names.
ENTRIES = {
    "mips": "Stanford MIPS\n\nA processor whose compiler fills delay slots by instruction scheduling and register allocation.",
    "delay": "delay slot\n\nThe instruction slot after a branch of a pipelined processor.",
    "regalloc": "register allocation\n\nA compiler phase assigning variables to registers.",
    "sched": "instruction scheduling\n\nA compiler phase that reorders instructions; studied by John Hennessy.",
    "cache": "cache\n\nA small fast memory near the processor.",
}


def test_graph_hop_lifts_the_entry_about_a_lower_case_term_the_best_passage_uses() -> None:
    from rag.query.multihop import walk_graph

    graph = _Graph(ENTRIES)
    assert graph.about(ENTRIES["mips"])["sched"] == "instruction scheduling"  # a name in any case, longest first
    config = settings("graph").multihop
    question = "Who studied the compiler phase that fills the delay slots of the Stanford MIPS processor?"
    first = _first(graph, ["mips", "cache", "sched", "delay", "regalloc"])
    found = walk_graph(question, first, graph, config)
    ranked = [c.chunk_id for c in found.chunks]
    assert ranked[0] == "mips" and ranked.index("sched") < ranked.index("cache")  # mentioned by the best, and a match
    assert found.via["sched"] == ("instruction scheduling",) and found.hops_of["sched"] == (1, 2)
    # the entry about a term the best passage uses gains as much as it matches the question: the first hop's last,
    # nothing; and an entry the best passage does not mention gains nothing from it
    assert ranked[-2:] == ["delay", "regalloc"] and "regalloc" not in found.via and "delay" not in found.via


def test_a_bridge_naming_a_lower_case_term_is_no_comparison() -> None:
    # the first hop found the entries about both 'Stanford MIPS' and 'delay slot'; only the first is a proper
    # name of the question, so this is a bridge (to the phase that fills delay slots), not a comparison
    from rag.query.multihop import walk_graph

    graph = _Graph(ENTRIES)
    question = "Who studied the compiler phase that fills the delay slot of the Stanford MIPS processor?"
    found = walk_graph(question, _first(graph, ["mips", "delay", "cache", "sched", "regalloc"]), graph,
                       settings("graph").multihop)
    assert not found.stopped and found.hops[0].found == 1
    assert found.via == {"sched": ("instruction scheduling",)} and found.hops_of["sched"] == (1, 2)
    # a comparison of two proper names still keeps the walk out (test_graph_hop_stays_out_of_a_comparison_...)


def test_gather_keeps_a_comparison_as_the_question_found_it(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    for name, text in FILMS.items():
        write(tmp_path / "docs" / f"{name}.txt", text)
    Ingestor(GRAPH, tmp_path / "home", embedder=embedder).run([tmp_path / "docs"])
    off = Answerer(settings("off"), tmp_path / "home", llm=object(), rerank=False)
    graph = Answerer(settings("graph"), tmp_path / "home", llm=object(), rerank=False)
    question = "Were Scott Derrickson and Ed Wood of the same nationality?"
    try:
        one, two = off.gather(question, 4), graph.gather(question, 4)
    finally:
        off.close_searchers()
        graph.close_searchers()
    assert [c.chunk_id for c in two.chunks] == [c.chunk_id for c in one.chunks]
    assert "about 2 names the question holds" in two.stopped and two.hops[0].found == 0


def test_graph_hop_is_skipped_above_its_size_limit(untitled_home: Path) -> None:
    small = Answerer(settings("graph", graph_max_chunks=3), untitled_home, llm=object(), rerank=False)
    try:
        evidence = small.gather(QUESTION, 3)
    finally:
        small.close_searchers()
    assert evidence.hops == () and "graph_max_chunks = 3" in evidence.stopped
    assert any("graph hop was skipped" in n for n in evidence.notes)


# -- the graph's file beside the collection --------------------------------------------------------


def reference_edges(chunks: list[tuple[str, list[str]]]) -> list[tuple[str, str, float]]:
    """The edge list as the graph was first defined, chunk by chunk (a dict in insertion order)."""
    df: dict[str, int] = {}
    for _, keys in chunks:
        for key in set(keys):
            df[key] = df.get(key, 0) + 1
    max_df = max(MIN_MAX_DF, int(MAX_DF_SHARE * len(chunks)))
    edges: dict[tuple[int, str], float] = {}
    for r, (_, keys) in enumerate(chunks):
        for j, key in enumerate(keys):
            if df[key] <= max_df:
                edges[(r, key)] = max(edges.get((r, key), 0.0), SUBJECT_WEIGHT if j == 0 else 1.0)
            words = key.split()
            for size in range(ALIAS_MIN_WORDS, len(words)):
                for start in range(len(words) - size + 1):
                    part = " ".join(words[start:start + size])
                    if part in df and df[part] <= max_df and (r, part) not in edges:
                        edges[(r, part)] = ALIAS_WEIGHT
    return [(chunks[r][0], key, w) for (r, key), w in edges.items()]


def edge_list(graph: GraphArrays) -> list[tuple[str, str, float]]:
    return [(graph.ids[r], graph.vocab[c], w) for r, c, w in zip(graph.rows.tolist(), graph.cols.tolist(),
                                                                  graph.weight.tolist())]


def test_edges_are_those_of_the_chunk_by_chunk_definition_in_its_order() -> None:
    rng = random.Random(7)
    words = ["ada", "lovelace", "charles", "babbage", "analytical", "engine", "london", "grace", "hopper", "x1"]
    for _ in range(40):
        chunks = [(f"c{i:03d}", [" ".join(rng.choice(words) for _ in range(rng.randint(1, 4)))
                                 for _ in range(rng.randint(0, 6))]) for i in range(rng.randint(0, 90))]
        graph = build_edges(ChunkNames.of((cid, "", keys) for cid, keys in chunks))
        assert edge_list(graph) == reference_edges(chunks)  # repeated names, aliases, common names: same order too
        assert graph.vocab == sorted(graph.vocab)
        firsts = [keys[0] if keys else None for _, keys in chunks]
        assert [graph.vocab[c] if c >= 0 else None for c in graph.subject.tolist()] == \
            [k if k in graph.vocab else None for k in firsts]


@pytest.mark.parametrize("fresh_limit", [200, 0])  # new names' aliases found by scans, or all found again
def test_names_merged_after_a_change_are_the_names_built_at_once(monkeypatch: pytest.MonkeyPatch,
                                                                  fresh_limit: int) -> None:
    monkeypatch.setattr(entity_graph, "FRESH_LIMIT", fresh_limit)
    rng = random.Random(11)
    words = ["ada", "lovelace", "charles", "babbage", "analytical", "engine", "london", "grace", "hopper", "x1", "ibm"]

    def chunk(i: int, tag: str) -> tuple[str, str, list[str]]:
        keys = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(0, 5))]
        return f"{rng.random():.12f}-{tag}{i}", f"file{i % 7}", keys

    for trial in range(30):
        before = sorted((chunk(i, "a") for i in range(rng.randint(0, 60))), key=lambda c: c[0])
        kept = ChunkNames.of(before)
        stay = np.array(sorted(rng.sample(range(len(before)), rng.randint(0, len(before)))), dtype=np.int64)
        added = sorted((chunk(i, "b") for i in range(rng.randint(0, 20))), key=lambda c: c[0])
        merged = entity_graph._merge(kept.take(stay), ChunkNames.of(added), {})
        at_once = ChunkNames.of(sorted([before[i] for i in stay.tolist()] + added, key=lambda c: c[0]))
        assert merged is not None and merged.ids == at_once.ids and merged.names == at_once.names, trial
        assert np.array_equal(merged.flat, at_once.flat) and np.array_equal(merged.ptr, at_once.ptr)
        assert np.array_equal(merged.alias_ptr, at_once.alias_ptr) and np.array_equal(merged.alias, at_once.alias)
        assert build_edges(merged).same(build_edges(at_once))
        assert [merged.sources[j] for j in merged.source.tolist()] == [at_once.sources[j] for j in at_once.source.tolist()]
    twice = ChunkNames.of([("x", "f", ["a b"])])
    assert entity_graph._merge(twice, twice, {}) is None  # an id in both: unsure, so the store is read


def _aliases_of(graph: GraphArrays) -> set[tuple[int, int]]:
    """(name, alias) column pairs: a chunk linked with the full weight to the first and ALIAS_WEIGHT to the second."""
    by_chunk: dict[int, dict[int, float]] = {}
    for r, c, w in zip(graph.rows.tolist(), graph.cols.tolist(), graph.weight.tolist()):
        by_chunk.setdefault(r, {})[c] = w
    return {(c, a) for links in by_chunk.values() for c, w in links.items() if w >= 1 for a, v in links.items()
            if v == ALIAS_WEIGHT and f" {graph.vocab[a]} " in f" {graph.vocab[c]} "}


def _store_graph(searcher: Searcher) -> GraphArrays:
    paths = searcher.ctx.paths
    return build_edges(read_store(searcher.ctx.store, manifest_states(paths.manifest)))


def _sync(searcher: Searcher) -> tuple[GraphArrays, str]:
    return sync_graph(searcher.ctx.store, searcher.ctx.paths, searcher.ctx.generation())


BABBAGE = {
    "a.txt": "Ada Lovelace worked with Charles Babbage on the Analytical Engine.",
    "b.txt": "Charles Babbage designed the Difference Engine in London.",
    "c.txt": "Grace Hopper wrote the first compiler. Grace Hopper Jr was not her son.",
    "d.txt": "The Analytical Engine was never built in London.",
}
MORE = {f"more{i}.txt": f"Note {i}: the Science Museum in London shows part {i} of the Difference Engine."
        for i in range(6)}  # so that changing three files is a change to a few of them


def test_graph_file_is_kept_in_step_file_by_file(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    docs, home = tmp_path / "docs", tmp_path / "home"
    for name, text in {**BABBAGE, **MORE}.items():
        write(docs / name, text)
    Ingestor(GRAPH, home, embedder=embedder).run([docs])
    path = collection_paths(home, "default").root / GRAPH_FILE
    assert path.exists()  # the ingest wrote it ([multihop] mode = "graph")
    searcher = Searcher(Settings(), home, rerank=False)
    try:
        loaded, how = _sync(searcher)
        assert how == "loaded" and loaded.same(_store_graph(searcher))

        # one file changed (new names, one of them inside another file's name), one deleted, one added;
        # the ingest leaves the file alone ("off"), so the next use updates it
        write(docs / "c.txt", "Grace Hopper met Ada Lovelace's biographers in Harvard. Harvard Mark I ran there.")
        (docs / "b.txt").unlink()
        write(docs / "e.txt", "Babbage would have liked it: the Harvard Mark I was built by IBM.")
        Ingestor(Settings.model_validate({"multihop": {"mode": "off"}}), home, embedder=embedder).run([docs])
        updated, how = _sync(searcher)
        assert how == "updated"
        store = _store_graph(searcher)
        assert updated.same(store) and edge_list(updated) == edge_list(store)
        assert {"harvard mark i", "babbage"} <= set(updated.vocab) and "grace hopper jr" not in updated.vocab
        # 'babbage', a new name, is now an alias inside a name that was there before
        pairs = {(updated.vocab[c], updated.vocab[a]) for c, a in _aliases_of(updated)}
        assert ("charles babbage on the analytical engine", "babbage") in pairs
        assert _sync(searcher)[1] == "loaded"  # written back at the new change counter

        write(docs / "d.txt", "The Analytical Engine was designed by Charles Babbage.")
        Ingestor(GRAPH, home, embedder=embedder).run([docs])  # the ingest updates it itself
        again, how = _sync(searcher)
        assert how == "loaded" and again.same(_store_graph(searcher))
        graph = searcher.entity_graph()
        assert graph is not None and graph.ids == tuple(again.ids) and np.array_equal(graph.cols, again.cols)
    finally:
        searcher.close()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped", "empty", "array", "other format"])
def test_a_damaged_graph_file_is_rebuilt_from_the_store(tmp_path: Path, embedder, damage: str) -> None:  # type: ignore[no-untyped-def]
    for name, text in BABBAGE.items():
        write(tmp_path / "docs" / name, text)
    Ingestor(GRAPH, tmp_path / "home", embedder=embedder).run([tmp_path / "docs"])
    path = collection_paths(tmp_path / "home", "default").root / GRAPH_FILE
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not a graph at all")
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flipped":  # inside the names the graph is read with: the archive's checksum no longer matches
        at = data.rindex(b"babbage")
        path.write_bytes(data[:at] + b"X" + data[at + 1:])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "array":
        np.save(path.open("wb"), np.arange(3))
    else:
        path.write_bytes(data.replace(b'"format": 1', b'"format": 9'))
    searcher = Searcher(Settings(), tmp_path / "home", rerank=False)
    try:
        rebuilt, how = _sync(searcher)
        assert how == "built" and rebuilt.same(_store_graph(searcher))
        assert _sync(searcher)[1] == "loaded"  # and written back whole
        assert searcher.entity_graph() is not None
    finally:
        searcher.close()


@pytest.mark.slow
def test_kill9_while_the_graph_file_is_written_leaves_a_whole_file(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    from tests.test_crash import crash_run

    docs, home = tmp_path / "docs", tmp_path / "home"
    for name, text in BABBAGE.items():
        write(docs / name, text)
    Ingestor(GRAPH, home, embedder=embedder).run([docs])
    path = collection_paths(home, "default").root / GRAPH_FILE
    before = path.read_bytes()
    write(docs / "a.txt", "Luigi Menabrea published the notes of Ada Lovelace.")
    crash_run(home, docs, GRAPH, "graph_written")  # killed after the new file is written, before its rename
    assert path.read_bytes() == before and list(path.parent.glob(f".{GRAPH_FILE}.*.tmp"))
    searcher = Searcher(Settings(), home, rerank=False)
    try:
        graph, how = _sync(searcher)  # the old file is whole and older than the store: updated
        assert how == "updated" and graph.same(_store_graph(searcher)) and "luigi menabrea" in graph.vocab
        assert not list(path.parent.glob(f".{GRAPH_FILE}.*.tmp"))  # the dead writer's file is gone
    finally:
        searcher.close()
