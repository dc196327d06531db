"""The ``rag`` command line: thin commands over library calls.

Results go to stdout, progress and diagnostics to stderr. Expected failures
(RagError) become one line on stderr and an exit status; see EXIT_* below.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable

import click

from rag.core.config import Settings, default_config_toml
from rag.cli.text import plain
from rag.cli.context import EXIT_ERROR, EXIT_NOTHING, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, Context, handle_errors  # noqa: F401
from rag.cli.context import show_warnings_as_notes
from rag.cli.busy import wait_for_store
from rag.core.errors import RagError

@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for config.toml and indexes (default: $RAG_HOME, else ~/.local/share/rag).",
)
@click.version_option(package_name="rag-chat", prog_name="rag")
@click.pass_context
def main(ctx: click.Context, home: str | None) -> None:
    """Chat with your own documents: ingest a folder, search it, ask it, evaluate it.

    \b
    Example:
      rag ingest ~/docs
      rag status
    """
    show_warnings_as_notes()
    ctx.obj = Context(home)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--collection", "-c", default="default", show_default=True, help="Collection to ingest into.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.pass_obj
@handle_errors
def ingest(obj: Context, paths: tuple[str, ...], collection: str, as_json: bool) -> None:
    """Add, update and remove documents of PATHS (folders or files) in a collection.

    Reruns are incremental: unchanged files are not re-read, changed files are
    replaced after their new chunks are stored, deleted files are removed.

    \b
    Exit status: 0 all files went in; 3 some files failed (listed), the rest
    went in; 4 no file could be ingested; 1 error (nothing changed); 2 usage.

    \b
    Example:
      rag ingest ~/docs --collection notes --json
    """
    from ingest.pipeline import ingest as run_ingest
    from rag.cli.render import IngestProgress, print_ingest_summary

    from rag.cli.serve import ingest_through, server_for

    server = server_for(obj)
    if server is not None:  # the running `rag serve` owns the store
        report = ingest_through(server, paths, collection)
    else:
        with IngestProgress(enabled=sys.stderr.isatty()) as progress:
            report = wait_for_store(lambda: run_ingest(list(paths), obj.settings, obj.home, collection, progress),
                                    obj.home, collection)
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        print_ingest_summary(report)
    if report.files_ingested == 0 and report.files_unchanged == 0:  # same in a new or an existing collection
        if not report.files_failed:
            click.echo("rag: no supported files found; see the README for the formats read", err=True)
        sys.exit(EXIT_NOTHING)
    if report.files_failed:
        sys.exit(EXIT_PARTIAL)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
@handle_errors
def status(obj: Context, as_json: bool) -> None:
    """List collections with their files, chunks, models, store location and size.

    \b
    Example:
      rag status --json
    """
    from rag.cli.status import collect_status, print_status

    from rag.cli.serve import server_for, status_through

    info = collect_status(obj.settings, obj.home)
    server = server_for(obj)
    if server is not None:
        info = status_through(server, info)
    if as_json:
        click.echo(json.dumps(info, ensure_ascii=False))
    else:
        print_status(info)


@main.command()
@click.argument("query")
@click.option("-k", "k", type=int, default=5, show_default=True, help="How many results.")
@click.option("--collection", "-c", default="default", show_default=True)
@click.option("--retriever", "-r", default=None, help="hybrid (default), dense, bm25, sparse, or a plugin's name.")
@click.option("--no-rerank", is_flag=True, help="Keep the fused order (skip the cross-encoder).")
@click.option("--filter", "filters", multiple=True, metavar="FIELD=VALUE",
              help="source=GLOB, type=pdf, page=3, ... (repeatable; all must hold).")
@click.option("--explain", is_flag=True, help="Show each stage's rank and score.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
@handle_errors
def search(obj: Context, query: str, k: int, collection: str, retriever: str | None, no_rerank: bool,
           filters: tuple[str, ...], explain: bool, as_json: bool) -> None:
    """Search a collection by meaning and by exact words.

    \b
    Example:
      rag search "how often should I water succulents" -k 3 --explain
      rag search "invoice total" --filter 'source=*.pdf' --json
    """
    from rag.query.retrieve import parse_filters
    from rag.query.search import search as run_search

    flt = parse_filters(list(filters))
    from rag.query.search import MAX_K

    if not 1 <= k <= MAX_K:  # before any model is loaded
        raise RagError(f"-k must be between 1 and {MAX_K} (got {k})")
    from rag.cli.serve import search_result, server_for

    server = server_for(obj)
    if server is not None:
        result = search_result(server.search(query, collection, k, retriever, False if no_rerank else None, list(filters)))
    else:
        result = wait_for_store(lambda: run_search(query, obj.settings, obj.home, collection, k, retriever,
                                                   False if no_rerank else None, flt), obj.home, collection)
    for note in result.notes:
        click.echo(f"rag: note: {plain(note)}", err=True)
    if as_json:
        click.echo(json.dumps(result.as_dict(), ensure_ascii=False))
        return
    from rag.cli.render import print_search

    print_search(result, explain)


def _answer_settings(settings: Settings, expand: str | None, multihop: str | None, max_hops: int | None) -> Settings:
    """The settings with the ask/chat overrides of [query] expand and [multihop] applied."""
    if expand is not None:
        settings = settings.model_copy(update={"query": settings.query.model_copy(update={"expand": expand})})
    hop: dict[str, Any] = {}
    if multihop is not None:
        hop["mode"] = multihop
    if max_hops is not None:
        if not 1 <= max_hops <= 5:
            from rag.core.errors import ConfigError

            raise ConfigError(f"--max-hops must be between 1 and 5 (got {max_hops})")
        hop["max_hops"] = max_hops
    if hop:
        settings = settings.model_copy(update={"multihop": settings.multihop.model_copy(update=hop)})
    return settings


_COLLECTION_HELP = "Collection to search; default: routed among described collections ([route]), else 'default'."
_EXPAND_HELP = "Query expansion ([query] expand): multi = LLM-written alternative queries, hyde = a hypothetical passage."
_MULTIHOP_HELP = ("Multi-hop retrieval ([multihop] mode): links = follow names in the best passages (no LLM), "
                  "graph = walk the graph of passages and the names they share (no LLM), "
                  "llm = LLM-written follow-up queries.")


@main.command()
@click.argument("question")
@click.option("--collection", "-c", default=None, help=_COLLECTION_HELP)
@click.option("--retriever", "-r", default=None, help="hybrid (default), dense, bm25, sparse, or a plugin's name.")
@click.option("--expand", type=click.Choice(["none", "multi", "hyde"]), default=None, help=_EXPAND_HELP)
@click.option("--multihop", type=click.Choice(["off", "links", "graph", "llm"]), default=None, help=_MULTIHOP_HELP)
@click.option("--max-hops", type=int, default=None, help="Bound on retrieval rounds, the first included ([multihop] max_hops).")
@click.option("--explain", is_flag=True, help="Also show the queries, route, hops, per-sentence checks and timings.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of streaming.")
@click.pass_obj
@handle_errors
def ask(obj: Context, question: str, collection: str | None, retriever: str | None, expand: str | None,
        multihop: str | None, max_hops: int | None, explain: bool, as_json: bool) -> None:
    """Answer QUESTION from a collection, citing the passages it used as [n].

    The LLM is [llm] base_url (any OpenAI-compatible endpoint) or, when that is
    empty, a local llama.cpp server started for this command.

    \b
    Example:
      rag ask "how often should I water succulents?"
      rag ask "what changed in the 2024 policy?" --collection policies --json
      rag ask "which film starred the ambassador to Ghana?" --multihop links --explain
    """
    from rag.core.errors import ConfigError

    if not question.strip():
        raise ConfigError("empty question; type what you want to know")
    from rag.cli.serve import ask_options, ask_through, server_for

    server = server_for(obj)
    if server is not None:  # the running `rag serve` has the models loaded and the LLM started
        return ask_through(server, question, collection, ask_options(retriever, expand, multihop, max_hops), explain,
                           as_json)
    from rag.query.answer import Answerer  # imported only here: the served path needs none of the answering stack

    settings = _answer_settings(obj.settings, expand, multihop, max_hops)
    answerer = wait_for_store(lambda: Answerer(settings, obj.home, collection, retriever=retriever), obj.home, collection)
    try:
        def echo_token(delta: str) -> None:
            click.echo(plain(delta, newlines=True), nl=False)
            sys.stdout.flush()

        answer = answerer.ask(question, on_token=None if as_json else echo_token)
    finally:
        answerer.close()
    for note in answer.notes:
        click.echo(f"rag: note: {plain(note)}", err=True)
    if as_json:
        click.echo(json.dumps(answer.as_dict(), ensure_ascii=False))
        return
    click.echo("")
    _print_answer_tail(answer, explain)


def _print_answer_tail(answer: Any, explain: bool) -> None:
    """After a streamed answer: the refusal if it was withdrawn, its sources, and the --explain lines."""
    from rag.cli.render import print_answer_sources

    if answer.withdrawn:
        click.echo(f"\n{plain(answer.answer, newlines=True)} (withdrawn: the sources do not support the draft above)")
    print_answer_sources(answer.as_dict(), explain)


@main.command()
@click.option("--collection", "-c", default=None, help=_COLLECTION_HELP)
@click.option("--retriever", "-r", default=None, help="hybrid (default), dense, bm25, sparse, or a plugin's name.")
@click.option("--expand", type=click.Choice(["none", "multi", "hyde"]), default=None, help=_EXPAND_HELP)
@click.option("--multihop", type=click.Choice(["off", "links", "graph", "llm"]), default=None, help=_MULTIHOP_HELP)
@click.option("--max-hops", type=int, default=None, help="Bound on retrieval rounds, the first included ([multihop] max_hops).")
@click.option("--explain", is_flag=True, help="Show the rewritten query, route, hops and timings after each answer.")
@click.pass_obj
@handle_errors
def chat(obj: Context, collection: str | None, retriever: str | None, expand: str | None, multihop: str | None,
         max_hops: int | None, explain: bool) -> None:
    """Talk with a collection in the terminal; answers stream with citations.

    Follow-up questions are rewritten into standalone queries using the
    conversation. Type /help for commands; Ctrl-C stops the current answer,
    Ctrl-D or /quit leaves.

    \b
    Example:
      rag chat --collection notes
    """
    from rag.cli.serve import ask_options, chat_through, server_for

    server = server_for(obj)
    if server is not None:  # every turn goes to the running `rag serve`: nothing to load here
        return chat_through(server, collection, ask_options(retriever, expand, multihop, max_hops), explain)
    from rag.query.answer import Answerer
    from rag.query.chat import ChatSession
    from rag.cli.chatloop import ChatTurns, run_chat_loop
    from rag.core.home import list_collections

    settings = _answer_settings(obj.settings, expand, multihop, max_hops)
    answerer = wait_for_store(lambda: Answerer(settings, obj.home, collection, retriever=retriever), obj.home, collection)
    session = ChatSession(answerer)
    target = f"'{answerer.collection}'" if len(answerer.searchers) == 1 else (
        "collections " + ", ".join(answerer.searchers) + " (routed per question)")
    click.echo(f"chatting with {target} ({answerer.llm.endpoint}); /help for commands", err=True)

    def answer(line: str, on_token: Callable[[str], None]) -> None:
        reply = session.turn(line, on_token=on_token)
        click.echo("")
        for note in reply.notes:
            click.echo(f"rag: note: {plain(note)}", err=True)
        _print_answer_tail(reply, explain)

    def sources() -> list[dict[str, object]] | None:
        return None if session.last is None else session.last.as_dict()["sources"]

    try:
        run_chat_loop(ChatTurns(answer=answer, reset=session.reset, collections=lambda: list_collections(obj.home),
                                sources=sources))
    finally:
        answerer.close()


@main.group()
def collections() -> None:
    """List collections and describe them for routing."""


@collections.command("describe")
@click.argument("name")
@click.argument("text")
@click.pass_obj
@handle_errors
def collections_describe(obj: Context, name: str, text: str) -> None:
    """Set the description of collection NAME used to route questions ('' removes it).

    Once any collection has a description, `rag ask` and `rag chat` without
    --collection send each question to the collection(s) whose description fits
    it best ([route] mode: embedding or llm).

    \b
    Example:
      rag collections describe recipes "Cooking recipes, ingredients and kitchen techniques"
    """
    from rag.query.route import write_description

    click.echo(str(write_description(obj.home, name, text)))


@collections.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
@handle_errors
def collections_list(obj: Context, as_json: bool) -> None:
    """List the collections of the home with their descriptions.

    \b
    Example:
      rag collections list --json
    """
    from rag.query.route import descriptions

    found = descriptions(obj.home)
    if as_json:
        click.echo(json.dumps(found, ensure_ascii=False))
        return
    for name, text in found.items():
        click.echo(plain(f"{name}: {text}" if text else name))


@main.group()
def config() -> None:
    """Show or create the configuration file."""


@config.command("show")
@click.pass_obj
@handle_errors
def config_show(obj: Context) -> None:
    """Print the effective settings (file + environment) as JSON."""
    click.echo(json.dumps({"home": str(obj.home), **obj.settings.model_dump()}, indent=2))


@config.command("init")
@click.option("--force", is_flag=True, help="Overwrite an existing config.toml.")
@click.pass_obj
@handle_errors
def config_init(obj: Context, force: bool) -> None:
    """Write a commented config.toml with every default into the home folder."""
    path = obj.home / "config.toml"
    if path.exists() and not force:
        raise RagError(f"{path} already exists; pass --force to overwrite it")
    obj.home.mkdir(parents=True, exist_ok=True)
    path.write_text(default_config_toml(), encoding="utf-8")
    click.echo(str(path))


@main.group("eval")
def eval_group() -> None:
    """Evaluate retrieval and answers on question/answer sets."""


@eval_group.command("beir")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--split", default="test", show_default=True, help="qrels/<split>.tsv to evaluate.")
@click.option("--retriever", "-r", default=None, help="hybrid (default), dense, bm25, sparse, or a plugin's name.")
@click.option("--no-rerank", is_flag=True, help="Evaluate the fused order without the cross-encoder.")
@click.option("--run-file", type=click.Path(dir_okay=False), default=None, help="Also write the TREC run here.")
@click.option("--limit", type=int, default=None, help="Only the first N queries (by id).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
@handle_errors
def eval_beir(obj: Context, folder: str, split: str, retriever: str | None, no_rerank: bool,
              run_file: str | None, limit: int | None, as_json: bool) -> None:
    """Retrieval metrics (trec_eval semantics) on a BEIR folder: corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv.

    The corpus goes into its own collection (beir-<folder>) under the home dir and
    is reused by later runs.

    \b
    Example:
      rag eval beir ~/data/scifact --retriever bm25 --no-rerank --json
    """
    from evals.beir_run import run_beir

    if limit is not None and limit <= 0:
        raise RagError(f"--limit must be at least 1 (got {limit})")
    report = run_beir(Path(folder), obj.settings, obj.home, split, retriever, False if no_rerank else None,
                      Path(run_file) if run_file else None, limit)
    out = report.as_dict()
    if as_json:
        click.echo(json.dumps(out))
    else:
        for key in ("dataset", "split", "retriever", "reranked", "queries", "map", "ndcg@10", "recall@10",
                    "recall@100", "mrr@10", "latency_ms_p50", "latency_ms_p95"):
            click.echo(f"{key:>15}: {out[key]}")


@eval_group.command("import")
@click.argument("kind", type=click.Choice(["beir", "hotpotqa", "clapnq"]))
@click.argument("src", type=click.Path())
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for suite.jsonl and docs/.")
@click.option("--overwrite", is_flag=True, help="Replace suite.jsonl and docs/ in a non-empty --out.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def eval_import(kind: str, src: str, out: str, overwrite: bool, as_json: bool) -> None:
    """Write an evaluation suite (suite.jsonl) and a folder of documents to ingest from a public set.

    \b
    Example:
      rag eval import hotpotqa ~/data/hotpotqa-dev-500 --out ~/suites/hotpotqa
      rag ingest ~/suites/hotpotqa/docs --collection hotpotqa
    """
    import dataclasses

    from evals.importers import import_suite

    summary = import_suite(kind, Path(src), Path(out), overwrite=overwrite)
    info = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(summary).items()}
    if as_json:
        click.echo(json.dumps(info))
    else:
        for key, value in info.items():
            click.echo(f"{key:>18}: {value}")


@main.group()
def bench() -> None:
    """Benchmarks that print measured figures and ratios against a baseline."""


@bench.command("ingest")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
@handle_errors
def bench_ingest(obj: Context, folder: str, as_json: bool) -> None:
    """Ingest throughput on FOLDER against raw SentenceTransformer.encode of the same chunks.

    Ingests into a fresh temporary home (your collections are not touched) and
    encodes the same chunk texts with the bare model in the same process, half
    just before and half just after the pipeline, so machine noise hits both.
    ratio = pipeline chunks/s / raw encode chunks/s (goal >= 0.85).

    \b
    Example:
      rag bench ingest ~/docs --json
    """
    from rag.cli.bench import bench_ingest as run_bench

    result = run_bench(Path(folder), obj.settings)
    if as_json:
        click.echo(json.dumps(result))
    else:
        for key, value in result.items():
            click.echo(f"{key:>24}: {value}")


@bench.command("scale")
@click.option("--corpus", required=True, type=click.Path(exists=True),
              help="Real text for the chunks: a folder of documents or a .jsonl with a text field.")
@click.option("--sizes", default="10000,100000,1000000", show_default=True, help="Comma-separated collection sizes.")
@click.option("--queries", default=200, show_default=True, type=click.IntRange(10, 10_000), help="Queries per size.")
@click.option("--ef", "efs", default="", help="Comma-separated [store] hnsw_ef values to search with, one search "
              "run each (default: the configured one).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
@handle_errors
def bench_scale(obj: Context, corpus: str, sizes: str, queries: int, efs: str, as_json: bool) -> None:
    """Search latency, recall, memory, disk and re-ingest cost at growing collection sizes.

    Synthetic collections (clustered unit vectors, text drawn from --corpus) are written through
    the configured [store] backend and settings in a temporary home (your collections are not
    touched), each size in a process of its own. See docs/scale.md.

    \b
    Example:
      rag bench scale --corpus ~/docs --sizes 10000,100000
    """
    from rag.cli.bench_scale import bench_scale as run_scale
    from rag.core.errors import ConfigError

    try:
        counts = [int(x) for x in sizes.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--sizes takes comma-separated numbers, e.g. 10000,100000 (got {sizes!r})") from None
    if not counts or min(counts) < 100 or max(counts) > 50_000_000:
        raise ConfigError(f"--sizes must be between 100 and 50,000,000 chunks (got {sizes!r})")
    try:
        ef_values = [int(x) for x in efs.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--ef takes comma-separated numbers, e.g. 128,256 (got {efs!r})") from None
    if any(not 4 <= e <= 4096 for e in ef_values):
        raise ConfigError(f"--ef values must be between 4 and 4096 (got {efs!r})")
    result = run_scale(counts, Path(corpus), obj.settings, queries, efs=ef_values)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"corpus {result['corpus']} ({result['corpus_chunks']} chunks of text), backend {result['backend']}, "
               f"settings {result['store_settings']}, {result['queries']} queries, {result['cpu_count']} CPUs")
    keys = ("chunks", "write_points_per_s", "index_build_seconds", "dense_p50_ms", "dense_p95_ms", "sparse_p50_ms",
            "hybrid_p50_ms", "hybrid_p95_ms", "recall_at_10_vs_exact", "build_peak_rss_mb", "search_peak_rss_mb",
            "disk_mb", "reingest_one_file_seconds", "open_close_seconds", "reingest_resident_seconds")
    for row in result["sizes"]:
        click.echo("  ".join(f"{k}={row[k]}" for k in keys))
        for run in row.get("by_hnsw_ef", [])[1:]:
            click.echo("    " + "  ".join(f"{k}={v}" for k, v in run.items()))


from rag.cli.tune import tune  # noqa: E402
from rag.cli.eval import register_eval_commands  # noqa: E402

register_eval_commands(eval_group, handle_errors)  # rag eval run | score | compare
main.add_command(tune)  # rag tune reranker | embedder
from rag.cli.doctor import doctor  # noqa: E402

main.add_command(doctor)  # rag doctor
from rag.cli.serve import mcp, serve  # noqa: E402

main.add_command(serve)  # rag serve
main.add_command(mcp)  # rag mcp


def run() -> None:
    """Console-script entry point."""
    main(prog_name="rag")


if __name__ == "__main__":
    run()
