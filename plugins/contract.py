"""A reusable contract test for retriever plugins (needs pytest).

Every retriever, built-in or third-party, should pass :class:`RetrieverContract`.
Subclass it in your own test module (name the subclass ``Test...`` so pytest
collects it) and provide two fixtures:

* ``retriever``: your :class:`~rag.query.retrieve.Retriever`, built on a small ingested
  collection (ideally with a few Markdown files, so the filter checks have
  something to filter);
* ``contract_queries``: a few queries that your retriever is expected to answer
  with at least one chunk on that collection. Include a broad one that matches
  many chunks with different scores, or the order checks have little to check.

Example::

    import pytest
    from ingest.pipeline import Ingestor
    from rag.core.config import Settings
    from rag.query.retrieve import RetrieverContext
    from plugins.contract import RetrieverContract

    import my_plugin


    @pytest.fixture(scope="module")
    def ctx(tmp_path_factory):
        home, settings = tmp_path_factory.mktemp("home"), Settings()
        Ingestor(settings, home).run(["tests/corpus"])  # a folder with a few .md/.txt files
        ctx = RetrieverContext(settings, home, "default")
        yield ctx
        ctx.close()


    class TestMyRetriever(RetrieverContract):
        @pytest.fixture()
        def retriever(self, ctx):
            return my_plugin.factory(ctx)

        @pytest.fixture()
        def contract_queries(self):
            return ["how often to water succulents", "spider mites"]

Class attributes tune the checks: ``k`` (result depth), ``score_key`` (the key
in ``scores``/``ranks`` holding this retriever's own scores and ranks; default:
the retriever's ``name``), ``filter_file_type`` (file type used by the filter
check; the check is skipped when no result of that type comes back for any
contract query) and ``no_match_query`` (a query whose words appear nowhere).

What is checked: ``name`` is a non-empty str; ``retrieve(q, k)`` returns a list of
at most ``k`` :class:`~rag.query.retrieve.ScoredChunk`; ``ranks[key]`` run 1..n in order;
``scores[key]`` is present and non-increasing; ``score`` is a float; chunk ids are
unique; text and source are non-empty; the same query gives the same ids twice;
``k=1`` gives the best result; a query with no matching words gives a list (maybe
empty), not an error; an empty filter changes nothing; file-type and source-glob
filters hold for every result, and a glob matching no source gives nothing.
"""

from __future__ import annotations

import glob
import math
from pathlib import PurePath
from typing import Any, Sequence

import pytest

from rag.query.retrieve import Retriever, ScoredChunk, SearchFilter

__all__ = ["RetrieverContract", "check_results"]


def check_results(results: Any, k: int, key: str, where: str = "") -> list[ScoredChunk]:
    """Assert the shape every ``retrieve`` result must have; return it typed.

    ``key`` is the retriever's own entry in ``scores`` and ``ranks``; ``where``
    is added to failure messages (e.g. the query).
    """
    at = f" ({where})" if where else ""
    assert isinstance(results, list), f"retrieve() must return a list, got {type(results).__name__}{at}"
    assert len(results) <= k, f"retrieve(k={k}) returned {len(results)} results{at}"
    for i, r in enumerate(results):
        assert isinstance(r, ScoredChunk), f"result {i} is a {type(r).__name__}, not a ScoredChunk{at}"
        assert isinstance(r.chunk_id, str) and r.chunk_id, f"result {i} has an empty chunk_id{at}"
        assert isinstance(r.text, str) and r.text.strip(), f"result {i} ({r.chunk_id}) has no text{at}"
        assert isinstance(r.source, str) and r.source, f"result {i} ({r.chunk_id}) has no source{at}"
        assert isinstance(r.score, float) and not math.isnan(r.score), (
            f"result {i} ({r.chunk_id}) score must be a float, got {r.score!r}{at}"
        )
        assert key in r.scores, f"result {i} ({r.chunk_id}) has no scores[{key!r}] (has {sorted(r.scores)}){at}"
        assert key in r.ranks, f"result {i} ({r.chunk_id}) has no ranks[{key!r}] (has {sorted(r.ranks)}){at}"
    ids = [r.chunk_id for r in results]
    assert len(set(ids)) == len(ids), f"duplicate chunk ids in the results: {ids}{at}"
    ranks = [r.ranks[key] for r in results]
    assert ranks == list(range(1, len(results) + 1)), f"ranks[{key!r}] must be 1..n in order, got {ranks}{at}"
    scores = [float(r.scores[key]) for r in results]
    assert all(a >= b for a, b in zip(scores, scores[1:])), (
        f"scores[{key!r}] must not increase down the list, got {scores}{at}"
    )
    return list(results)


class RetrieverContract:
    """Contract tests for a retriever; subclass as ``TestX(RetrieverContract)`` and provide the fixtures.

    Required fixtures: ``retriever`` (the Retriever under test, on an ingested
    collection) and ``contract_queries`` (queries expected to return results).
    """

    #: How many results most checks ask for.
    k: int = 5
    #: Key of this retriever's own entry in ``scores``/``ranks``; None: the retriever's name.
    score_key: str | None = None
    #: File type used by the file-type filter check.
    filter_file_type: str = "md"
    #: A query none of whose words appear in the collection.
    no_match_query: str = "zqxjv wvkpq xyzzyfrob"

    # -- helpers -------------------------------------------------------------------------------

    def key_of(self, retriever: Retriever) -> str:
        """The scores/ranks key checked for this retriever."""
        return self.score_key or retriever.name

    def run(self, retriever: Retriever, query: str, k: int, flt: SearchFilter | None = None) -> list[ScoredChunk]:
        """``retriever.retrieve`` followed by the shape checks of :func:`check_results`."""
        results = retriever.retrieve(query, k, flt)
        where = f"query {query!r}, k={k}" + (f", filter {flt}" if flt is not None else "")
        return check_results(results, k, self.key_of(retriever), where)

    def answered(self, retriever: Retriever, queries: Sequence[str]) -> list[tuple[str, list[ScoredChunk]]]:
        """Each contract query with its (checked) results."""
        assert queries, "the contract_queries fixture must give at least one query"
        return [(q, self.run(retriever, q, self.k)) for q in queries]

    # -- the contract --------------------------------------------------------------------------

    def test_name(self, retriever: Retriever) -> None:
        """``name`` is a non-empty string."""
        assert isinstance(retriever.name, str) and retriever.name.strip(), f"bad retriever name {retriever.name!r}"

    def test_results_are_well_formed(self, retriever: Retriever, contract_queries: Sequence[str]) -> None:
        """Every contract query returns 1..k well-formed ScoredChunks, best first."""
        for query, results in self.answered(retriever, contract_queries):
            assert results, f"contract query {query!r} returned nothing"

    def test_deterministic(self, retriever: Retriever, contract_queries: Sequence[str]) -> None:
        """The same query twice gives the same ids in the same order."""
        for query in contract_queries:
            first = [r.chunk_id for r in self.run(retriever, query, self.k)]
            second = [r.chunk_id for r in self.run(retriever, query, self.k)]
            assert first == second, f"query {query!r} gave {first} then {second}"

    def test_k_one(self, retriever: Retriever, contract_queries: Sequence[str]) -> None:
        """``k=1`` returns exactly the best result of a deeper search (or one tied with it)."""
        key = self.key_of(retriever)
        for query in contract_queries:
            deep = self.run(retriever, query, self.k)
            top = self.run(retriever, query, 1)
            assert len(top) == 1, f"query {query!r} with k=1 returned {len(top)} results"
            if deep and top[0].chunk_id != deep[0].chunk_id:
                assert math.isclose(top[0].scores[key], deep[0].scores[key], rel_tol=1e-6, abs_tol=1e-9), (
                    f"query {query!r}: k=1 gave {top[0].chunk_id}, k={self.k} starts with {deep[0].chunk_id}"
                )

    def test_no_matching_words(self, retriever: Retriever) -> None:
        """A query whose words appear nowhere returns a list (maybe empty), not an error."""
        self.run(retriever, self.no_match_query, self.k)

    def test_empty_filter_changes_nothing(self, retriever: Retriever, contract_queries: Sequence[str]) -> None:
        """``SearchFilter()`` gives the same ids as no filter."""
        for query in contract_queries:
            plain = [r.chunk_id for r in self.run(retriever, query, self.k)]
            empty = [r.chunk_id for r in self.run(retriever, query, self.k, SearchFilter())]
            assert plain == empty, f"query {query!r}: no filter gave {plain}, an empty filter {empty}"

    def test_file_type_filter(self, retriever: Retriever, contract_queries: Sequence[str]) -> None:
        """With ``file_types=(T,)`` every result has ``file_type == T``.

        Uses the first contract query whose unfiltered results include a chunk of
        type T, so the filtered search must find something too.
        """
        wanted = self.filter_file_type
        for query, results in self.answered(retriever, contract_queries):
            if any(r.file_type == wanted for r in results):
                break
        else:
            pytest.skip(f"no contract query returns a {wanted!r} chunk; nothing to filter")
        filtered = self.run(retriever, query, self.k, SearchFilter(file_types=(wanted,)))
        assert filtered, f"query {query!r} finds {wanted!r} chunks unfiltered but none with file_types=({wanted!r},)"
        types = [r.file_type for r in filtered]
        assert all(t == wanted for t in types), f"file_types=({wanted!r},) let through {types}"

    def test_source_glob_filter(self, retriever: Retriever, contract_queries: Sequence[str]) -> None:
        """With a glob naming one file, every result comes from that file; a glob matching nothing gives nothing."""
        for query, results in self.answered(retriever, contract_queries):
            if results:
                break
        else:  # pragma: no cover - test_results_are_well_formed reports this
            pytest.skip("no contract query returns anything")
        name = PurePath(results[-1].source).name
        flt = SearchFilter(source_globs=(glob.escape(name),))
        filtered = self.run(retriever, query, self.k, flt)
        assert filtered, f"query {query!r} finds chunks of {name!r} unfiltered but none with source glob {name!r}"
        names = [PurePath(r.source).name for r in filtered]
        assert all(n == name for n in names), f"source glob {name!r} let through {names}"
        nothing = self.run(retriever, query, self.k, SearchFilter(source_globs=("no-such-file-*.nothing",)))
        assert nothing == [], f"a glob matching no source returned {[r.source for r in nothing]}"
