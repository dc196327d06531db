"""``rag tune``: fine-tune the reranker (and the embedder) on your own question/answer data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import click

from rag.cli.context import Context, handle_errors


@click.group()
def tune() -> None:
    """Fine-tune retrieval models on your questions (suites, BEIR folders, ARES rows)."""


def _train_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options ``rag tune reranker`` and ``rag tune embedder`` share."""
    options = [
        click.option("--train", "sources", multiple=True, required=True, type=click.Path(),
                     help="A suite (suite.jsonl or its folder), a BEIR folder, or ARES .tsv rows; repeatable."),
        click.option("--split", default="train", show_default=True, help="BEIR qrels split to train on."),
        click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the trained model."),
        click.option("--base", default="all-MiniLM-L6-v2", show_default=True,
                     help="Model to start from: the packaged MiniLM, a hub id or a local folder."),
        click.option("--epochs", type=float, default=1.0, show_default=True),
        click.option("--batch-size", type=int, default=16, show_default=True),
        click.option("--lr", "learning_rate", type=float, default=4e-5, show_default=True),
        click.option("--max-length", type=int, default=256, show_default=True, help="Tokens per input."),
        click.option("--negatives", type=int, default=3, show_default=True, help="Hard negatives per question."),
        click.option("--ares-per-file", "per_file", type=int, default=None,
                     help="Questions sampled from each ARES .tsv (seeded); default all."),
        click.option("--max-queries", type=int, default=None, help="Use only the first N questions of each source."),
        click.option("--heldout", type=float, default=0.1, show_default=True,
                     help="Share of questions kept aside for early stopping."),
        click.option("--eval-steps", type=int, default=None, help="Evaluate and checkpoint every N steps (default 4x/epoch)."),
        click.option("--seed", type=int, default=13, show_default=True),
        click.option("--threads", type=int, default=2, show_default=True, help="CPU threads for training."),
        click.option("--restart", is_flag=True, help="Ignore checkpoints of an interrupted run in OUT."),
        click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _options(out: str, heldout: float, full: bool = False, **kw: Any) -> Any:
    from rag.core.errors import ConfigError
    from rag.tune.reranker import TuneOptions

    if not 0 <= heldout < 1:
        raise ConfigError(f"--heldout must be between 0 and 1 (got {heldout})")
    kw.pop("as_json", None)
    return TuneOptions(out=Path(out), heldout=heldout, compact=not full, **kw)


def _say(message: str) -> None:
    click.echo(f"rag: {message}", err=True)


def _ingest_progress() -> Any:
    """The progress bar drawn while a training corpus is indexed (only on a terminal)."""
    import sys

    from rag.cli.render import IngestProgress

    return IngestProgress(enabled=sys.stderr.isatty())


@tune.command("reranker")
@_train_options
@click.option("--loss", type=click.Choice(["bce", "listwise"]), default="listwise", show_default=True,
              help="listwise: softmax over the gold passage, its hard negatives and one in-batch negative; "
              "bce: binary cross-entropy on (question, passage, 0/1) pairs.")
@click.option("--full", is_flag=True, help="Save the whole model instead of the compact fp16 delta over --base.")
@click.pass_obj
@handle_errors
def tune_reranker_cmd(obj: Context, as_json: bool, **kw: Any) -> None:
    """Fine-tune a cross-encoder reranker with hard negatives mined by the hybrid retriever.

    Each --train corpus is indexed in its own collection of this home; a held-out
    slice of the questions picks the best checkpoint and the hybrid/cross-encoder
    blend. An interrupted run resumes from OUT/checkpoints. Use the result with
    [rerank] model = OUT.

    \b
    Example (how the shipped reranker is made):
      rag tune reranker --train ~/data/ares-train --ares-per-file 150 \\
          --train ~/data/scifact --loss listwise --lr 1.5e-4 \\
          --max-length 192 --epochs 2 --eval-steps 40 --out rag/models/reranker
    """
    from rag.tune.reranker import tune_reranker

    summary = tune_reranker(_options(**kw), obj.settings, obj.home, _say, _ingest_progress)
    if as_json:
        click.echo(json.dumps(summary))
    else:
        h = summary["heldout"]
        click.echo(f"held-out nDCG@10 ({h['questions']} questions): hybrid {h['ndcg@10_hybrid']:.4f}, "
                   f"before {h['ndcg@10_before']:.4f}, after {h['ndcg@10_after']:.4f}, "
                   f"blended {h['ndcg@10_blended']:.4f} (blend {summary['blend']})")
        click.echo(f"saved to {kw['out']}; use it with: RAG_RERANK_MODEL={kw['out']}")


@tune.command("embedder")
@_train_options
@click.option("--reembed", is_flag=True, help="Then index each training corpus again with the new model "
              "(in <collection>-tuned).")
@click.pass_obj
@handle_errors
def tune_embedder_cmd(obj: Context, as_json: bool, reembed: bool, **kw: Any) -> None:
    """Fine-tune the bi-encoder (MultipleNegativesRankingLoss, mined hard negatives).

    Saves a full sentence-transformers model to OUT; use it with [embedding] model
    = OUT on a collection ingested with it (--reembed builds one for each --train
    corpus).

    \b
    Example:
      rag tune embedder --train ~/data/scifact --out ~/models/minilm-scifact --reembed
    """
    from rag.tune.embedder import tune_embedder

    summary = tune_embedder(_options(**kw), obj.settings, obj.home, _say, reembed, _ingest_progress)
    if as_json:
        click.echo(json.dumps(summary))
    else:
        h = summary["heldout"]
        click.echo(f"held-out nDCG@10 ({h['questions']} questions): before {h['ndcg@10_before']:.4f}, "
                   f"after {h['ndcg@10_after']:.4f}")
        click.echo(f"saved to {kw['out']}; use it with: RAG_EMBEDDING_MODEL={kw['out']}")


@tune.command("verifier")
@click.option("--train", "sources", multiple=True, required=True, type=click.Path(),
              help="ARES .tsv rows (a file or a folder) or a SciFact folder (corpus.jsonl, claims/claims_train.csv); "
              "repeatable.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the trained verifier.")
@click.option("--base", default="all-MiniLM-L6-v2", show_default=True,
              help="Model to start from: the packaged MiniLM, a hub id or a local folder.")
@click.option("--init", default=None, type=click.Path(file_okay=False),
              help="Start from a trained cross-encoder of --base stored as rag stores it (e.g. rag/models/reranker).")
@click.option("--epochs", type=float, default=1.0, show_default=True)
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--lr", "learning_rate", type=float, default=4e-5, show_default=True)
@click.option("--max-length", type=int, default=256, show_default=True, help="Tokens per (claim, evidence) input.")
@click.option("--ares-per-file", "per_file", type=int, default=None,
              help="Faithful and unfaithful rows sampled from each ARES .tsv, each (seeded); default all.")
@click.option("--exclude", multiple=True, help="ARES file to leave out, by the name before '_' (e.g. wow); "
              "repeatable. Keep one aside to measure on.")
@click.option("--context/--no-context", default=False, show_default=True,
              help="Also train on ARES context-relevance rows as (document, question) pairs.")
@click.option("--answerable", type=click.IntRange(min=0), default=0, show_default=True,
              help="Per ARES file, N faithful rows whose short answer is in the document become rows for the "
              "gate's question: the question against the evidence with the answer (supported) and without "
              "its sentences (not). Not counted in --max-rows.")
@click.option("--max-rows", type=int, default=None, help="At most N rows of each source (seeded sample).")
@click.option("--max-words", type=int, default=170, show_default=True,
              help="Evidence is cut to a window of about N words around the answer or the rationale.")
@click.option("--heldout", type=float, default=0.1, show_default=True,
              help="Share of questions / claims kept aside for early stopping.")
@click.option("--eval-steps", type=int, default=None, help="Evaluate and checkpoint every N steps (default 4x/epoch).")
@click.option("--seed", type=int, default=13, show_default=True)
@click.option("--threads", type=int, default=2, show_default=True, help="CPU threads for training.")
@click.option("--restart", is_flag=True, help="Ignore checkpoints of an interrupted run in OUT.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@handle_errors
def tune_verifier_cmd(as_json: bool, out: str, heldout: float, sources: tuple[str, ...], exclude: tuple[str, ...],
                      **kw: Any) -> None:
    """Train the grounding verifier: P(evidence supports claim) from a small cross-encoder.

    Rows: ARES answers labelled faithful or not against their documents, SciFact
    training claims against their abstracts (SUPPORT; CONTRADICT, the rationale
    sentences removed and NOT ENOUGH INFO are unsupported), and made-up negatives
    (a number or a name swapped). Saves compact fp16 weights and a model card to OUT.

    \b
    Example (how the shipped verifier is made):
      rag tune verifier --train ~/data/ares-train --exclude wow --ares-per-file 300 \\
          --train ~/data/scifact --out rag/models/verifier
    """
    from rag.core.errors import ConfigError
    from rag.tune.verifier import VerifierOptions, tune_verifier

    if not 0 <= heldout < 1:
        raise ConfigError(f"--heldout must be between 0 and 1 (got {heldout})")
    opts = VerifierOptions(sources=sources, out=Path(out), heldout=heldout, exclude=exclude, **kw)
    summary = tune_verifier(opts, _say)
    if as_json:
        click.echo(json.dumps(summary))
    else:
        b, a = summary["heldout"]["before"], summary["heldout"]["after"]
        click.echo(f"held-out rows ({a.get('rows', 0)}): AUROC before {b.get('auroc')}, after {a.get('auroc')}; "
                   f"accuracy after {a.get('accuracy')}")
        click.echo(f"saved to {out}; load it with rag.query.verify_model.Verifier({out!r})")
