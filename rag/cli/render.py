"""Terminal rendering of ingest progress and summaries (rich, on stderr / stdout)."""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Mapping

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rag.cli.text import markup, plain

if TYPE_CHECKING:  # only for annotations: keep `rag ingest` from importing the search stack, and a command
    # served by `rag serve` (it prints answers and sources with this module) from importing the ingest stack
    from ingest.pipeline import IngestReport
    from rag.query.search import SearchResult

stderr = Console(stderr=True)
stdout = Console()


class IngestProgress:
    """A progress bar of files and chunks with the embedding rate, drawn on stderr."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=stderr,
            disable=not enabled,
            transient=False,
        )
        self._files = self._bar.add_task("files", total=None, detail="", visible=False)
        self._chunks = self._bar.add_task("chunks embedded", total=None, detail="", visible=False)
        self._embedded = 0
        self._t0 = time.perf_counter()

    def __enter__(self) -> "IngestProgress":
        self._bar.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._bar.__exit__(exc_type, exc, tb)

    def start(self, files: int) -> None:
        self._t0 = time.perf_counter()
        self._bar.update(self._files, total=files, visible=True)
        self._bar.update(self._chunks, visible=True)

    def file_done(self, source: str, chunks: int) -> None:
        name = source.rsplit("/", 1)[-1]
        self._bar.update(self._files, advance=1, detail=markup(name[:40]))

    def embedded(self, chunks: int) -> None:
        self._embedded += chunks
        rate = self._embedded / max(time.perf_counter() - self._t0, 1e-9)
        self._bar.update(self._chunks, completed=self._embedded, detail=f"{rate:.0f} chunks/s")

    def note(self, message: str) -> None:
        stderr.print(f"[yellow]rag:[/] {markup(message)}")


def print_ingest_summary(report: IngestReport) -> None:
    """The human-readable summary table (stdout), then failures and skips."""
    r = report
    stdout.print(
        f"[bold]Ingest into '{markup(r.collection)}':[/] files: {r.files_added} added, {r.files_updated} updated, "
        f"{r.files_unchanged} unchanged, {r.files_deleted} deleted, {len(r.files_failed)} failed; "
        f"chunks: {r.chunks_total} in all, {r.chunks_embedded} embedded, {r.chunks_reused} reused, "
        f"{r.chunks_removed} removed; {r.seconds:.1f} s",
        highlight=False,
    )
    stdout.print(f"store: {markup(report.store)}", highlight=False)
    for path in report.deleted:
        stdout.print(f"[dim]removed[/] {markup(path)}", highlight=False)
    if report.files_failed:
        stdout.print(f"[red]{len(report.files_failed)} file(s) could not be ingested:[/]")
        for issue in report.files_failed:
            stdout.print(f"  {markup(issue.path)}: {markup(issue.reason)}", highlight=False)
    if report.files_skipped:
        stdout.print(f"[yellow]{len(report.files_skipped)} file(s) skipped:[/]")
        for issue in report.files_skipped:
            stdout.print(f"  {markup(issue.path)}: {markup(issue.reason)}", highlight=False)


def print_search(result: "SearchResult", explain: bool) -> None:
    """Search results as numbered passages; with ``explain``, a table of every stage's rank and score."""
    if not result.results:
        stdout.print("no results")
        return
    for rank, r in enumerate(result.results, 1):
        where = markup(r.source + (f" p.{r.page}" if r.page is not None else ""))
        heading = markup(" > ".join(r.headings))
        stdout.print(f"[bold]{rank}.[/] [cyan]{where}[/]" + (f"  [dim]{heading}[/]" if heading else "")
                     + f"  [dim]score {r.score:.4f}[/]", highlight=False)
        snippet = plain(" ".join(r.text.split()))
        stdout.print("   " + (snippet[:300] + ("…" if len(snippet) > 300 else "")), highlight=False, markup=False)
    if explain:
        stages = sorted({s for r in result.results for s in r.ranks})
        table = Table(title=f"retriever: {markup(result.retriever)}" + (" + rerank" if result.reranked else ""))
        table.add_column("#", justify="right")
        table.add_column("chunk")
        for stage in stages:
            table.add_column(f"{stage} rank", justify="right")
            table.add_column(f"{stage} score", justify="right")
        for rank, r in enumerate(result.results, 1):
            cells = [str(rank), r.chunk_id[:8]]
            for stage in stages:
                cells.append(str(r.ranks.get(stage, "-")))
                score = r.scores.get(stage)
                cells.append(f"{score:.4f}" if score is not None else "-")
            table.add_row(*cells)
        stdout.print(table)
        stdout.print("timings: " + ", ".join(f"{k} {v:.1f} ms" for k, v in result.timings_ms.items()))


def print_answer_sources(answer: Mapping[str, Any], explain: bool) -> None:
    """After a streamed answer: the cited sources with path, page and the cited span.

    ``answer`` is the ``--json`` shape (``Answer.as_dict()``), so answers made here and answers
    from ``rag serve`` print the same way.
    """
    sources = answer.get("sources") or []
    sentences = answer.get("sentences") or []
    if answer.get("citations"):
        stdout.print("\n[bold]Sources[/]")
        for c in answer["citations"]:
            n = c["n"]
            where = markup(c["source"] + (f", page {c['page']}" if c.get("page") is not None else ""))
            mark = {True: "[green]supported[/]", False: "[red]not supported[/]", None: ""}[c.get("supported")]
            added = " [dim](citation added by rag)[/]" if c.get("attributed") else ""
            quotes = list(dict.fromkeys(
                (q["start"], q["end"], q["text"]) for s in sentences
                if n in s["sources"] and (q := s.get("quote")) is not None and q["n"] == n))
            if quotes:  # the sentences of the passage that the answer restates, with their offsets
                spans = ", ".join(f"{start}-{end}" for start, end, _ in quotes)
                stdout.print(f"[{n}] [cyan]{where}[/] chars {spans} {mark}{added}", highlight=False)
                for _, _, quoted in quotes:
                    text = plain(" ".join(quoted.split()))
                    stdout.print("    \u201c" + text[:240] + ("…" if len(text) > 240 else "") + "\u201d",
                                 markup=False, highlight=False)
                continue
            stdout.print(f"[{n}] [cyan]{where}[/] chars {c.get('start')}-{c.get('end')} {mark}{added}", highlight=False)
            snippet = plain(" ".join(sources[n - 1]["text"].split())) if n <= len(sources) else ""
            stdout.print("    " + snippet[:240] + ("…" if len(snippet) > 240 else ""), markup=False, highlight=False)
    if explain:
        stdout.print(f"\nquery: {plain((answer.get('queries') or [''])[0])}\n"
                     f"route: {plain(', '.join(answer.get('route') or []))}", markup=False, highlight=False)
        for s in sentences:
            verdict = {True: "supported", False: "NOT supported", None: "not checked"}[s.get("supported")]
            cites = str(list(s["sources"])) + (" added" if s.get("attributed") else "")
            stdout.print(f"  - {verdict} {cites}: {plain(s['text'])}", markup=False, highlight=False)
        stdout.print("timings: " + ", ".join(f"{k} {v:.2f}" for k, v in (answer.get("timings") or {}).items()),
                     markup=False, highlight=False)
        for line in answer.get("explain") or []:  # how the evidence was gathered: queries, route, hops
            stdout.print(plain(line), markup=False, highlight=False)
