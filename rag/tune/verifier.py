"""``rag tune verifier``: train the grounding verifier, a cross-encoder giving P(evidence supports claim).

Stages: read the training rows (rag.tune.verifier_data: ARES faithful/unfaithful answers,
SciFact training claims, made-up negatives), keep a seeded slice of them aside by group (an
ARES question or a SciFact claim never sits on both sides), train a sentence-transformers
``CrossEncoder`` with one output (binary cross-entropy on (claim, evidence, 0/1) rows, supported rows weighed up to
balance the classes) while
the held-out slice decides early stopping (average precision), then save compact fp16 weights
over the base (rag.core.ce_weights) with a model card. The trainer, its checkpoints and resume
are the reranker's (rag.tune.reranker.training_args / run_trainer).
"""

from __future__ import annotations

import json
import random
import shlex
import shutil
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from rag.core.errors import ConfigError
from rag.query.verify_model import META, WEIGHTS
from rag.tune.reranker import run_trainer, training_args
from rag.tune.verifier_data import Example, answerable_examples, ares_files, load_verifier_data, split_groups


@dataclass(frozen=True, slots=True)
class VerifierOptions:
    """Settings of one ``rag tune verifier`` run (the trainer reads the fields it shares with the reranker's)."""

    sources: tuple[str, ...]
    out: Path
    base: str = "all-MiniLM-L6-v2"
    init: str | None = None
    epochs: float = 1.0
    batch_size: int = 16
    learning_rate: float = 4e-5
    max_length: int = 256
    per_file: int | None = None
    exclude: tuple[str, ...] = ()
    context: bool = False
    answerable: int = 0
    max_rows: int | None = None
    max_words: int = 170
    heldout: float = 0.1
    heldout_max: int = 400
    eval_steps: int | None = None
    patience: int = 3
    seed: int = 13
    compact: bool = True
    restart: bool = False
    threads: int = 2


def auroc(scores: Sequence[float], labels: Sequence[float]) -> float:
    """Probability that a random supported row outscores a random unsupported one (ties count half)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels) >= 0.5
    pos, neg = s[y], s[~y]
    if not len(pos) or not len(neg):
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    values = np.concatenate([pos, neg])
    for v in np.unique(values):  # average ranks of ties
        tied = values == v
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _pairs(rows: Sequence[Example]) -> list[tuple[str, str]]:
    return [(r.claim, r.evidence) for r in rows]  # claim first: truncation cuts the evidence's end


def heldout_figures(model: Any, rows: Sequence[Example], batch_size: int = 32) -> dict[str, Any]:
    """AUROC and accuracy at 0.5 on ``rows``, overall and per kind of row."""
    if not rows:
        return {"rows": 0}
    probs = [float(x) for x in model.predict(_pairs(rows), batch_size=batch_size, show_progress_bar=False)]
    labels = [r.label for r in rows]
    per_kind = {}
    for kind in sorted({r.kind for r in rows}):
        idx = [i for i, r in enumerate(rows) if r.kind == kind]
        per_kind[kind] = round(sum((probs[i] >= 0.5) == (labels[i] >= 0.5) for i in idx) / len(idx), 4)
    return {"rows": len(rows), "auroc": round(auroc(probs, labels), 4),
            "accuracy": round(sum((p >= 0.5) == (y >= 0.5) for p, y in zip(probs, labels)) / len(rows), 4),
            "accuracy_per_kind": per_kind}


def load_rows(opts: VerifierOptions, say: Callable[[str], None]) -> tuple[list[Example], list[dict[str, Any]]]:
    """Every source's rows (each cut to a seeded ``max_rows`` when set) and a note per source."""
    rows: list[Example] = []
    notes = []
    for src in opts.sources:
        kind, got = load_verifier_data(src, opts.per_file, opts.seed, opts.exclude, opts.context, opts.max_words)
        if opts.max_rows and len(got) > opts.max_rows:
            got = random.Random(f"{opts.seed}:{src}").sample(got, opts.max_rows)
        if not got:
            raise ConfigError(f"{src}: no training rows")
        batches = [(kind, got)]
        if kind == "ares" and opts.answerable:  # the gate's rows, besides the --max-rows cap
            batches.append(("ares-answerable", answerable_examples(ares_files(Path(src), opts.exclude),
                                                                   opts.answerable, opts.seed, opts.max_words)))
        for what, batch in batches:
            counts = Counter(r.kind for r in batch)
            say(f"{src}: {len(batch)} {what} rows ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})")
            notes.append({"source": str(src), "kind": what, "rows": len(batch),
                          "by_kind": dict(sorted(counts.items())), "supported": sum(r.label >= 0.5 for r in batch)})
            rows.extend(batch)
    return rows, notes


def tune_verifier(opts: VerifierOptions, say: Callable[[str], None]) -> dict[str, Any]:
    """Run the whole training; returns the summary printed by the CLI and written to the model card."""
    import torch

    from rag.core.ce_weights import save_compact

    if opts.init:
        _init_files(opts.init)  # a wrong --init fails before the data is read
    torch.set_num_threads(max(1, opts.threads))
    random.seed(opts.seed)
    np.random.seed(opts.seed)
    started = time.perf_counter()
    rows, sources = load_rows(opts, say)
    train, held = split_groups(rows, opts.heldout, opts.seed, opts.heldout_max)
    if len(train) < 2 or len({r.label >= 0.5 for r in train}) < 2:
        raise ConfigError("rag tune verifier needs training rows of both labels (supported and not)")
    say(f"{len(train)} training rows ({sum(r.label >= 0.5 for r in train)} supported), {len(held)} held-out rows")
    model, base = _start(opts)
    for name, param in model.named_parameters():
        if name.endswith("word_embeddings.weight"):
            param.requires_grad = False  # keeps the shipped delta small and the vocabulary stable
    before = heldout_figures(model, held)
    say(f"held-out before training: AUROC {before.get('auroc')}, accuracy {before.get('accuracy')}")
    prepared = time.perf_counter()
    _train(model, train, held, opts, say)
    trained = time.perf_counter()
    after = heldout_figures(model, held)
    say(f"held-out after training: AUROC {after.get('auroc')}, accuracy {after.get('accuracy')}")
    summary: dict[str, Any] = {
        "sources": sources,
        "base": base,
        "init": opts.init,
        "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(opts).items()
                     if k not in ("out", "restart", "sources")},
        "training_rows": len(train),
        "training_supported": sum(r.label >= 0.5 for r in train),
        "heldout": {"before": before, "after": after},
        "threshold": 0.5,
        "seconds": {"prepare": round(prepared - started, 1), "train": round(trained - prepared, 1)},
    }
    summary["command"] = "rag " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["tune"] \
        else None
    opts.out.mkdir(parents=True, exist_ok=True)
    write_model_card(opts.out, summary)
    save_compact(model, base, opts.out, summary, weights_name=WEIGHTS, meta_name=META)
    shutil.rmtree(opts.out / "checkpoints", ignore_errors=True)
    return summary


def _init_files(init: str) -> tuple[Path, tuple[str, str]]:
    """The folder of ``--init`` and its (weights, meta) file names; ConfigError when it holds neither kind."""
    folder = Path(init).expanduser()
    names = next(((w, m) for w, m in ((WEIGHTS, META), ("reranker.safetensors", "rag_reranker.json"))
                  if (folder / w).is_file() and (folder / m).is_file()), None)
    if names is None:
        raise ConfigError(f"--init {init}: no compact cross-encoder there (rag_reranker.json + "
                          "reranker.safetensors, or a verifier's own files); e.g. --init rag/models/reranker")
    return folder, names


def _start(opts: VerifierOptions) -> tuple[Any, str]:
    """The cross-encoder training starts from, and the base its stored tensors are a delta over.

    With ``init`` (a folder of compact cross-encoder weights, e.g. the shipped reranker), training
    starts from those weights: the verifier inherits a model that already reads (query, passage)
    pairs, and is stored, like it, as a delta over the same base.
    """
    from rag.core.ce_weights import load_compact, new_cross_encoder

    if not opts.init:
        return new_cross_encoder(opts.base, opts.max_length, opts.seed), opts.base
    folder, names = _init_files(opts.init)
    model, meta = load_compact(folder, opts.max_length, weights_name=names[0], meta_name=names[1])
    return model, str(meta["base"])


def write_model_card(out: Path, summary: dict[str, Any]) -> None:
    """A Markdown model card next to the weights: data, settings, held-out figures, how to reproduce."""
    b, a = summary["heldout"]["before"], summary["heldout"]["after"]
    lines = [
        "# Grounding verifier trained with `rag tune verifier`", "",
        f"Base model: `{summary['base']}`"
        + (f", training started from the cross-encoder in `{summary['init']}`" if summary.get("init") else "")
        + " (sentence-transformers `CrossEncoder`, one output, binary cross-entropy). "
        "Input: (claim, evidence); output: P(the evidence supports the claim). An answer to a question is read as "
        "`Question: ... Answer: ...`. Stored as the tensors that differ from the base, in fp16 "
        f"(`{WEIGHTS}`, `{META}`).", "",
        "## Training data", "",
        "| source | kind | rows | supported | rows by kind |", "|---|---|---|---|---|",
        *[f"| `{s['source']}` | {s['kind']} | {s['rows']} | {s['supported']} | "
          f"{', '.join(f'{k} {v}' for k, v in s['by_kind'].items())} |" for s in summary["sources"]],
        "", f"{summary['training_rows']} training rows ({summary['training_supported']} supported) after a seeded "
        f"held-out slice of {a.get('rows', 0)} rows (whole questions / claims) was set aside for early stopping.",
        "", "## Settings", "", "```json", json.dumps(summary["settings"], indent=2), "```", "",
        "## Held-out rows (same sources, unseen questions and claims)", "",
        "| | AUROC | accuracy at 0.5 |", "|---|---|---|",
        f"| before training | {b.get('auroc')} | {b.get('accuracy')} |",
        f"| after training | {a.get('auroc')} | {a.get('accuracy')} |", "",
        f"Accuracy per kind of row after training: {json.dumps(a.get('accuracy_per_kind', {}))}", "",
        f"Training time: {summary['seconds']['train']} s (reading the data: {summary['seconds']['prepare']} s).",
    ]
    if summary.get("command"):
        lines += ["", "## Reproduce", "", "```bash", summary["command"], "```"]
    (out / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _train(model: Any, train: Sequence[Example], held: Sequence[Example], opts: VerifierOptions,
           say: Callable[[str], None]) -> None:
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.evaluation import CrossEncoderClassificationEvaluator
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
    from transformers import EarlyStoppingCallback

    dataset = Dataset.from_dict({"claim": [r.claim for r in train], "evidence": [r.evidence for r in train],
                                 "label": [float(r.label) for r in train]}).shuffle(seed=opts.seed)
    kwargs: dict[str, Any] = {}
    metric = "eval_heldout_average_precision"
    if held and len({r.label >= 0.5 for r in held}) == 2:
        kwargs["evaluator"] = CrossEncoderClassificationEvaluator(
            _pairs(held), [int(r.label >= 0.5) for r in held], name="heldout", write_csv=False)
        kwargs["callbacks"] = [EarlyStoppingCallback(early_stopping_patience=opts.patience)]
    args_kw = training_args(opts, len(dataset), metric)  # type: ignore[arg-type]
    if "evaluator" not in kwargs:  # nothing to stop on: train to the end, keep the last weights
        args_kw.update(eval_strategy="no", load_best_model_at_end=False, metric_for_best_model=None)
    import torch

    positives = sum(r.label >= 0.5 for r in train)
    # Supported rows are the minority (each makes one or more unsupported ones): weigh them up so the
    # classes count the same and 0.5 stays a sensible threshold.
    pos_weight = torch.tensor((len(train) - positives) / max(1, positives))
    trainer = CrossEncoderTrainer(model=model, args=CrossEncoderTrainingArguments(**args_kw), train_dataset=dataset,
                                  loss=BinaryCrossEntropyLoss(model, pos_weight=pos_weight), **kwargs)
    run_trainer(trainer, opts.out / "checkpoints", say)
