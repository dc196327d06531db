"""``rag eval run | score | compare``: thin commands over ``evals.run``, ``evals.report`` and ``evals.compare``.

Registered onto the ``eval`` group of ``rag.cli`` by :func:`register_eval_commands` (the
group and the error handler are passed in, so this module does not import ``rag.cli``).
Results go to stdout, the progress bar (with ETA) and notes to stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Sequence

import click

__all__ = ["register_eval_commands"]


class EvalProgress:
    """A question bar with rate and ETA on stderr (questions taken from the cache are not counted)."""

    def __init__(self, enabled: bool) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[detail]}"),
            console=Console(stderr=True), disable=not enabled,
        )  # fmt: skip
        self._task = self._bar.add_task("questions", total=None, detail="", visible=False)
        self._errors: dict[str, int] = {}

    def __enter__(self) -> EvalProgress:
        self._bar.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self._bar.__exit__(exc_type, exc, tb)

    def start(self, total: int, cached: int) -> None:
        label = f"questions ({cached} cached)" if cached else "questions"
        self._bar.update(self._task, total=total, description=label, visible=True)

    def failed(self, question_id: str, kinds: Sequence[str]) -> None:
        """Count a question that failed for now; the bar shows the count by kind from here on."""
        for kind in dict.fromkeys(kinds):
            self._errors[kind] = self._errors.get(kind, 0) + 1

    def advance(self, question_id: str) -> None:
        failed = ", ".join(f"{n} {kind}" for kind, n in sorted(self._errors.items()))
        detail = str(question_id)[:24] + (f"  [red]failed: {failed}[/]" if failed else "")
        self._bar.update(self._task, advance=1, detail=detail)


def _judge_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--judge-url", default=None, help="OpenAI-compatible endpoint of the judge (default: [llm])."),
        click.option("--judge-model", default=None,
                     help="Judge model: the endpoint's model name, or with the local server a local model or .gguf."),
        click.option("--judge-method", type=click.Choice(["logprob", "json", "verifier"]), default="logprob",
                     show_default=True,
                     help="logprob: P(Yes) from one prompt pass; json: a {\"verdict\": ...} reply; verifier: the "
                          "trained grounding verifier ([answer] verifier) judges faithfulness and citations, the "
                          "LLM (logprob) the rest."),
        click.option("--judge-threshold", type=float, default=0.5, show_default=True,
                     help="P(Yes) at or above which a verdict is yes."),
        click.option("--no-judge", is_flag=True, help="Skip judged metrics (EM/F1 and refusals only)."),
        click.option("--ragas", "ragas_metrics", default="", metavar="M1,M2",
                     help="Also compute ragas metrics through the judge endpoint (needs the ragas extra): "
                          "faithfulness, answer_relevancy, context_recall, context_precision, factual_correctness, "
                          "response_groundedness."),
        click.option("--limit", type=int, default=None, help="Only the first N questions."),
        click.option("--fresh", is_flag=True, help="Recompute every question (ignore the resume cache)."),
        click.option("--json", "as_json", is_flag=True, help="Print means, intervals and per-question values as JSON."),
        click.option("--report", "report", type=click.Path(dir_okay=False), default=None,
                     help="Write a report (Markdown; HTML if it ends in .html) with PNG charts beside it."),
        click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
                     help="Write one JSON line per question: metrics, retrieved ids, answer, verdicts."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _options(**kw: Any) -> Any:
    from evals.run import EvalOptions

    ragas = tuple(m.strip() for m in (kw.pop("ragas_metrics") or "").split(",") if m.strip())
    return EvalOptions(ragas=ragas, judge=not kw.pop("no_judge"), use_cache=not kw.pop("fresh"), **kw)


def _notes(summary: Any, label: str = "") -> None:
    """A run's errors and questions to retry, as notes on stderr."""
    from rag.cli.text import plain

    if summary.errors:
        kinds = ", ".join(f"{kind} {n}" for kind, n in summary.errors_by_kind.items())
        click.echo(f"rag: note: {label}{summary.errors} error(s) ({plain(kinds)}); see the errors of each line (--out)",
                   err=True)
    if summary.retry:
        shown = ", ".join(summary.retry[:5]) + (", ..." if len(summary.retry) > 5 else "")
        click.echo(f"rag: note: {label}{len(summary.retry)} question(s) failed for now ({plain(shown)}), their failed "
                   "parts left out of the metrics; run the same command again to retry only those", err=True)


def _emit(results: list[dict[str, Any]], summary: Any, as_json: bool, report: str | None, out: str | None) -> None:
    from evals.report import write_report
    from evals.results import write_results
    from rag.cli.text import markup, plain
    from rag.core.redact import mask_secrets

    if out:
        write_results(results, Path(out))
        click.echo(f"rag: wrote {len(results)} result lines to {out}", err=True)
    if report:
        files = write_report(results, summary, Path(report))
        click.echo(f"rag: wrote report {files[0]}" + (f" and {len(files) - 1} chart(s)" if len(files) > 1 else ""),
                   err=True)
    _notes(summary)
    if as_json:
        click.echo(json.dumps(summary.as_dict(), ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{summary.questions} questions ({summary.cached} cached)")
    for col in ("metric", "n", "mean", "95% CI"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for name, m in summary.metrics.items():
        table.add_row(markup(name), str(m.n), f"{m.mean:.4f}", f"\\[{m.low:.4f}, {m.high:.4f}]")
    Console().print(table)
    for j in summary.judges:
        click.echo(plain(f"judge: {j['model']} at {mask_secrets(str(j['endpoint']))} ({j['method']})"))


MULTIHOP_MODES = ("off", "links", "graph", "llm")


def _multihop_modes(value: str | None) -> tuple[str, ...]:
    """``--multihop``: one mode, or two different ones to compare; a bad value is a one-line usage error."""
    if value is None:
        return ()
    modes = tuple(m.strip() for m in value.split(","))
    if len(modes) > 2 or any(m not in MULTIHOP_MODES for m in modes) or len(set(modes)) != len(modes):
        from rag.core.errors import ConfigError

        raise ConfigError(f"--multihop {value!r}: give one of {', '.join(MULTIHOP_MODES)}, or two different ones "
                          "joined by a comma (graph,off)")
    return modes


def _emit_comparison(modes: Sequence[str], a: Any, b: Any, as_json: bool) -> None:
    """Both runs' per-question metrics paired: first mode - second, with 95% bootstrap intervals."""
    from evals.compare import compare_runs

    for mode, summary in zip(modes, (a, b)):
        _notes(summary, f"--multihop {mode}: ")
    rows = compare_runs(a.per_question, b.per_question)
    if as_json:
        click.echo(json.dumps({"a": {"multihop": modes[0], **a.as_dict()}, "b": {"multihop": modes[1], **b.as_dict()},
                               "metrics": [r.as_dict() for r in rows]}, ensure_ascii=False))
        return
    _print_comparison(f"A = --multihop {modes[0]}   B = --multihop {modes[1]}   ({a.questions} questions)", rows)


def _print_comparison(title: str, rows: Sequence[Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("metric", "n", "A", "B", "A - B", "95% CI", ""):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for r in rows:
        table.add_row(r.metric, str(r.n), f"{r.mean_a:.4f}", f"{r.mean_b:.4f}", f"{r.diff:+.4f}",
                      f"[{r.low:+.4f}, {r.high:+.4f}]", "*" if r.significant else "")
    Console().print(table)
    click.echo("* the interval excludes 0")


def register_eval_commands(group: click.Group, handle_errors: Callable[..., Any]) -> None:
    """Add ``run``, ``score`` and ``compare`` to the ``rag eval`` group."""

    @group.command("run")
    @click.argument("suite", type=click.Path(dir_okay=False))
    @click.option("--collection", "-c", default="default", show_default=True,
                  help="Collection where the suite's docs/ were ingested.")
    @click.option("--retrieval-only", is_flag=True, help="Search only: retrieval metrics, no answers.")
    @click.option("--depth", type=int, default=20, show_default=True, help="Documents retrieved per question.")
    @click.option("--retriever", "-r", default=None, help="hybrid (default), dense, bm25, sparse, or a plugin's name.")
    @click.option("--no-rerank", is_flag=True, help="Keep the fused order (skip the cross-encoder).")
    @click.option("--run-file", type=click.Path(dir_okay=False), default=None, help="Also write the TREC run here.")
    @click.option("--multihop", "multihop", default=None, metavar="MODE[,MODE]",
                  help="[multihop] mode for this run: off, links, graph or llm; two joined by a comma (graph,off) run "
                       "the suite under each and print the paired differences, first - second.")
    @_judge_options
    @click.pass_obj
    @handle_errors
    def eval_run(obj: Any, suite: str, collection: str, retrieval_only: bool, depth: int, retriever: str | None,
                 no_rerank: bool, run_file: str | None, multihop: str | None, as_json: bool, report: str | None,
                 out: str | None, **kw: Any) -> None:  # fmt: skip
        """Run SUITE (suite.jsonl) on a collection: retrieval metrics, answers and judged answer metrics.

        Retrieved chunks are mapped to the suite's gold_sources (paths relative to the
        suite folder). A line that already has "answer" and "contexts" is scored without
        the engine. Finished questions are cached under the home folder: rerunning an
        interrupted run continues where it stopped.

        \b
        Example:
          rag eval import hotpotqa ~/data/hotpotqa-dev-500 --out ~/suites/hotpotqa
          rag ingest ~/suites/hotpotqa/docs --collection hotpotqa
          rag eval run ~/suites/hotpotqa/suite.jsonl -c hotpotqa --limit 50 --report hp.md --out hp.jsonl
          rag eval run ~/suites/hotpotqa/suite.jsonl -c hotpotqa --retrieval-only --multihop graph,off
        """
        from evals.results import write_run_file
        from evals.run import run_suite

        modes = _multihop_modes(multihop)
        if len(modes) == 2 and (run_file or report or out):
            from rag.core.errors import ConfigError

            raise ConfigError("--out, --report and --run-file write one run; give --multihop one mode, or compare "
                              "two runs' --out files with `rag eval compare`")
        options = _options(collection=collection, retrieval_only=retrieval_only, depth=depth, retriever=retriever,
                           rerank=False if no_rerank else None, **kw)
        runs = []
        for mode in modes or (None,):
            settings = obj.settings if mode is None else obj.settings.model_copy(
                update={"multihop": obj.settings.multihop.model_copy(update={"mode": mode})})
            with EvalProgress(enabled=sys.stderr.isatty()) as progress:
                runs.append(run_suite(Path(suite), settings, obj.home, options, progress))
        if len(runs) == 2:
            _emit_comparison(modes, runs[0][1], runs[1][1], as_json)
            return
        results, summary = runs[0]
        if run_file:
            write_run_file(results, Path(run_file))
        _emit(results, summary, as_json, report, out)

    @group.command("score")
    @click.argument("file", type=click.Path(dir_okay=False))
    @_judge_options
    @click.pass_obj
    @handle_errors
    def eval_score(obj: Any, file: str, as_json: bool, report: str | None, out: str | None, **kw: Any) -> None:
        """Score lines that already carry "answer" and "contexts" (a suite, or the --out of run) without the engine.

        Inline [n] markers in an answer cite its n-th context. A line's "retrieved" doc ids,
        if present, give retrieval metrics against its gold_sources.

        \b
        Example:
          rag eval score answers.jsonl --judge-url http://localhost:8080/v1 --out scored.jsonl --json
        """
        from evals.run import score_lines

        with EvalProgress(enabled=sys.stderr.isatty()) as progress:
            results, summary = score_lines(Path(file), obj.settings, obj.home, _options(**kw), progress)
        _emit(results, summary, as_json, report, out)

    @group.command("compare")
    @click.argument("a", type=click.Path(dir_okay=False))
    @click.argument("b", type=click.Path(dir_okay=False))
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    @handle_errors
    def eval_compare(a: str, b: str, as_json: bool) -> None:
        """Paired differences A - B with 95% bootstrap intervals, per metric, over shared questions.

        A and B are the --json or --out outputs of two `rag eval run` (or score) runs.

        \b
        Example:
          rag eval run suite.jsonl -c docs --json > hybrid.json
          rag eval run suite.jsonl -c docs -r bm25 --json > bm25.json
          rag eval compare hybrid.json bm25.json
        """
        from evals.compare import compare_runs, read_per_question

        rows = compare_runs(read_per_question(Path(a)), read_per_question(Path(b)))
        if as_json:
            click.echo(json.dumps({"a": a, "b": b, "metrics": [r.as_dict() for r in rows]}))
            return
        _print_comparison(f"A = {a}   B = {b}", rows)
