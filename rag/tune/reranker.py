"""``rag tune reranker``: fine-tune a cross-encoder on your questions, with mined hard negatives.

Stages: read the training sources (rag.tune.data), index each corpus and mine hard
negatives with the hybrid retriever (rag.tune.mine), train a sentence-transformers
``CrossEncoder`` (binary cross-entropy on (question, passage, 0/1) pairs, or a listwise softmax
over each question's gold passage and its hard negatives) while a
held-out slice of the questions decides early stopping, then choose how much of the
hybrid score to keep beside the cross-encoder's (the blend) on that same held-out
slice, and save. Checkpoints go to ``OUT/checkpoints``: a rerun resumes from the last.
"""

from __future__ import annotations

import json
import math
import random
import shlex
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from evals.metrics import ndcg_at_k
from rag.core.config import Settings
from rag.core.errors import ConfigError
from rag.query.rerank import blended
from rag.tune.data import TrainData, load_train_data, split_heldout
from rag.tune.mine import IngestProgressFactory, Mined, collection_for, index_corpus, mine

BLEND_GRID = tuple(round(x * 0.1, 1) for x in range(11))


@dataclass(frozen=True, slots=True)
class TuneOptions:
    """Settings of one ``rag tune reranker`` run."""

    sources: tuple[str, ...]
    out: Path
    base: str = "all-MiniLM-L6-v2"
    split: str = "train"
    epochs: float = 1.0
    batch_size: int = 16
    learning_rate: float = 4e-5
    max_length: int = 256
    negatives: int = 3
    depth: int = 30
    heldout: float = 0.1
    heldout_max: int = 100
    per_file: int | None = None
    max_queries: int | None = None
    eval_steps: int | None = None
    patience: int = 3
    seed: int = 13
    compact: bool = True
    restart: bool = False
    threads: int = 2
    loss: str = "listwise"


def heldout_ndcg(items: Sequence[Mined], gold: dict[str, frozenset[str]], scores: Sequence[Sequence[float]] | None,
                 blend: float = 1.0) -> float:
    """Mean nDCG@10 over held-out questions (all gold sources count as relevant; None scores: hybrid order)."""
    values = []
    for i, m in enumerate(items):
        fused = [c.fused for c in m.candidates]
        final = np.asarray(fused) if scores is None else blended(fused, scores[i], blend)
        order = sorted(range(len(m.candidates)), key=lambda j: (-final[j], j))
        ranking = list(dict.fromkeys(m.candidates[j].source for j in order))
        values.append(ndcg_at_k({s: 1 for s in gold[m.qid]}, ranking, 10))
    return float(np.mean(values)) if values else 0.0


def ce_scores(model: Any, items: Sequence[Mined], batch_size: int = 32) -> list[list[float]]:
    """The cross-encoder's score of every candidate of every question."""
    pairs = [(m.query, c.text) for m in items for c in m.candidates]
    flat = model.predict(pairs, batch_size=batch_size, show_progress_bar=False) if pairs else []
    out, i = [], 0
    for m in items:
        out.append([float(x) for x in flat[i:i + len(m.candidates)]])
        i += len(m.candidates)
    return out


def _rows(items: Sequence[Mined], loss: str, negatives: int) -> dict[str, list[Any]]:
    """Training rows: (query, passage, label) for "bce"; (query, positive, negative_1..n) for "listwise"."""
    if loss == "bce":
        rows: dict[str, list[Any]] = {"query": [], "passage": [], "label": []}
        for m in items:
            for text, label in [(p, 1.0) for p in m.positives] + [(n, 0.0) for n in m.negatives]:
                rows["query"].append(m.query)
                rows["passage"].append(text)
                rows["label"].append(label)
        return rows
    n = max(1, negatives)
    rows = {"query": [], "positive": [], **{f"negative_{i}": [] for i in range(1, n + 1)}}
    for m in items:
        if not m.negatives:
            continue
        negs = [m.negatives[i % len(m.negatives)] for i in range(n)]  # short lists repeat their negatives
        for p in m.positives:
            rows["query"].append(m.query)
            rows["positive"].append(p)
            for i, text in enumerate(negs, 1):
                rows[f"negative_{i}"].append(text)
    return rows


@dataclass(frozen=True, slots=True)
class Prepared:
    """Mined training and held-out questions of every source, with their gold sources and corpora."""

    train: list[Mined]
    held: list[Mined]
    gold: dict[str, frozenset[str]]
    notes: list[dict[str, Any]]
    data: list[TrainData]


def prepare(opts: TuneOptions, settings: Settings, home: Path, say: Callable[[str], None],
            ingest_progress: IngestProgressFactory | None = None) -> Prepared:
    """Load, index and mine every training source (questions are prefixed ``kind:name:`` to stay unique)."""
    from tqdm.auto import tqdm

    out = Prepared([], [], {}, [], [])
    heldout_share = max(1, opts.heldout_max // max(1, len(opts.sources)))
    for src in opts.sources:
        data = load_train_data(src, opts.split, opts.per_file, opts.seed)
        queries = data.queries[: opts.max_queries] if opts.max_queries else data.queries
        if len(queries) < 2:
            raise ConfigError(f"{src}: {len(queries)} question(s) with gold documents; rag tune needs at least 2")
        say(f"{src}: {len(queries)} questions over {len(data.corpus)} documents; indexing in "
            f"'{collection_for(data)}'")
        collection, ingest = index_corpus(data, settings, home, ingest_progress)
        tr, ho = split_heldout(tuple(queries), opts.heldout, opts.seed)
        ho = ho[:heldout_share]
        with tqdm(total=len(tr) + len(ho), desc="mining hard negatives", unit="q") as bar:
            mined = mine(data, tr + ho, settings, home, collection, depth=opts.depth, negatives=opts.negatives,
                         seed=opts.seed, on_query=lambda: bar.update(1))
        prefix = f"{data.kind}:{data.name}:"
        by_id = {q.qid: q.gold for q in queries}
        renamed = [Mined(prefix + m.qid, m.query, m.positives, m.negatives, m.candidates) for m in mined]
        for m in renamed:
            out.gold[m.qid] = by_id[m.qid[len(prefix):]]
        out.train.extend(renamed[: len(tr)])
        out.held.extend(renamed[len(tr):])
        out.data.append(data)
        out.notes.append({"source": str(src), "kind": data.kind, "collection": collection,
                          "questions": len(queries), "train_questions": len(tr), "heldout_questions": len(ho),
                          **ingest})
    return out


def tune_reranker(opts: TuneOptions, settings: Settings, home: Path, say: Callable[[str], None],
                  ingest_progress: IngestProgressFactory | None = None) -> dict[str, Any]:
    """Run the whole fine-tuning; returns the summary printed by the CLI and written to the model card."""
    import torch

    torch.set_num_threads(max(1, opts.threads))
    random.seed(opts.seed)
    np.random.seed(opts.seed)
    started = time.perf_counter()
    prep = prepare(opts, settings, home, say, ingest_progress)
    train, held, gold, sources = prep.train, prep.held, prep.gold, prep.notes
    rows = _rows(train, opts.loss, opts.negatives)
    pairs = sum(len(m.positives) + len(m.negatives) for m in train)
    say(f"{pairs} (question, passage) pairs from {len(train)} questions, {len(rows['query'])} training rows "
        f"({opts.loss} loss); {len(held)} held-out questions")

    from rag.core.ce_weights import new_cross_encoder, save_compact

    model = new_cross_encoder(opts.base, opts.max_length, opts.seed)
    for name, param in model.named_parameters():
        if name.endswith("word_embeddings.weight"):
            param.requires_grad = False  # keeps the shipped delta small and the vocabulary stable
    before = heldout_ndcg(held, gold, ce_scores(model, held))
    hybrid = heldout_ndcg(held, gold, None)
    say(f"held-out nDCG@10: hybrid alone {hybrid:.4f}; cross-encoder before training {before:.4f}")

    prepared = time.perf_counter()
    _train(model, rows, held, opts, say)
    trained = time.perf_counter()
    after_scores = ce_scores(model, held)
    after = heldout_ndcg(held, gold, after_scores)
    blend_curve = {b: heldout_ndcg(held, gold, after_scores, b) for b in BLEND_GRID}
    best_blend = max(BLEND_GRID, key=lambda b: (round(blend_curve[b], 6), b))
    say(f"held-out nDCG@10 after training: cross-encoder {after:.4f}; blended with hybrid "
        f"{blend_curve[best_blend]:.4f} at blend {best_blend}")

    summary: dict[str, Any] = {
        "sources": sources,
        "base": opts.base,
        "settings": {k: v for k, v in asdict(opts).items() if k not in ("out", "restart", "sources")},
        "training_pairs": pairs,
        "training_rows": len(rows["query"]),
        "heldout": {"questions": len(held), "ndcg@10_hybrid": round(hybrid, 4), "ndcg@10_before": round(before, 4),
                    "ndcg@10_after": round(after, 4), "ndcg@10_blended": round(blend_curve[best_blend], 4),
                    "blend_curve": {str(k): round(v, 4) for k, v in blend_curve.items()}},
        "blend": best_blend,
        "seconds": {"prepare": round(prepared - started, 1), "train": round(trained - prepared, 1)},
    }
    summary["command"] = "rag " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["tune"] \
        else None
    opts.out.mkdir(parents=True, exist_ok=True)
    write_model_card(opts.out, summary)
    if opts.compact:
        save_compact(model, opts.base, opts.out, summary)
    else:
        model.save_pretrained(str(opts.out))
        (opts.out / "rag_tune.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(opts.out / "checkpoints", ignore_errors=True)
    return summary


def write_model_card(out: Path, summary: dict[str, Any]) -> None:
    """A Markdown model card next to the weights: data, settings, held-out numbers, how to reproduce."""
    h = summary["heldout"]
    lines = [
        "# Cross-encoder reranker trained with `rag tune reranker`", "",
        f"Base model: `{summary['base']}` (sentence-transformers `CrossEncoder`, one output; "
        f"{'listwise softmax' if summary['settings'].get('loss') == 'listwise' else 'binary cross-entropy'} loss).",
        "Stored as the tensors that differ from the base, in fp16 (`reranker.safetensors`, `rag_reranker.json`)"
        if summary["settings"].get("compact") else "Stored as a full model folder.", "",
        "## Training data", "",
        "| source | kind | questions (train / held-out) | corpus chunks | collection used for mining |",
        "|---|---|---|---|---|",
        *[f"| `{s['source']}` | {s['kind']} | {s['train_questions']} / {s['heldout_questions']} | {s['chunks_total']} "
          f"| `{s['collection']}` |" for s in summary["sources"]],
        "", f"{summary['training_pairs']} (question, passage) pairs: each question's gold passages and "
        f"{summary['settings']['negatives']} hard negatives sampled from the hybrid retriever's top "
        f"{summary['settings']['depth']} non-gold results, plus a known-irrelevant passage where the data gives one; "
        f"{summary['settings']['loss']} loss over {summary['training_rows']} training rows.",
        "", "## Settings", "", "```json", json.dumps(summary["settings"], indent=2), "```", "",
        f"Blend (weight of the cross-encoder against the fused hybrid score, z-scored over the reranked top): "
        f"**{summary['blend']}**, chosen on the held-out questions.", "",
        "## Held-out questions (nDCG@10 of the reranked hybrid top 20)", "",
        "| hybrid alone | before training | after training | after, blended |", "|---|---|---|---|",
        f"| {h['ndcg@10_hybrid']} | {h['ndcg@10_before']} | {h['ndcg@10_after']} | {h['ndcg@10_blended']} |", "",
        f"Training time: {summary['seconds']['train']} s (preparation: indexing and mining, {summary['seconds']['prepare']} s).",
    ]
    if summary.get("command"):
        lines += ["", "## Reproduce", "", "```bash", summary["command"], "```"]
    (out / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _train(model: Any, rows: dict[str, list[Any]], held: Sequence[Mined], opts: TuneOptions,
           say: Callable[[str], None]) -> None:
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.evaluation import CrossEncoderRerankingEvaluator
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss, MultipleNegativesRankingLoss
    from transformers import EarlyStoppingCallback

    dataset = Dataset.from_dict(rows).shuffle(seed=opts.seed)
    samples = [{"query": m.query, "positive": [c.text for c in m.candidates if c.gold] or list(m.positives),
                "documents": [c.text for c in m.candidates]} for m in held]
    evaluator = CrossEncoderRerankingEvaluator(samples, at_k=10, always_rerank_positives=False, name="heldout",
                                               write_csv=False)
    args = CrossEncoderTrainingArguments(**training_args(opts, len(dataset), "eval_heldout_ndcg@10"))
    trainer = CrossEncoderTrainer(
        model=model, args=args, train_dataset=dataset, evaluator=evaluator,
        loss=BinaryCrossEntropyLoss(model) if opts.loss == "bce" else MultipleNegativesRankingLoss(model, num_negatives=1),
        callbacks=[EarlyStoppingCallback(early_stopping_patience=opts.patience)],
    )
    run_trainer(trainer, opts.out / "checkpoints", say)


def training_args(opts: TuneOptions, rows: int, metric: str) -> dict[str, Any]:
    """Trainer arguments both tuners share: CPU, seeded, evaluate and checkpoint ~4x per epoch, keep the best."""
    checkpoints = opts.out / "checkpoints"
    if opts.restart:
        shutil.rmtree(checkpoints, ignore_errors=True)
    eval_steps = opts.eval_steps or max(10, math.ceil(rows / opts.batch_size) // 4)
    return dict(
        output_dir=str(checkpoints), num_train_epochs=opts.epochs, per_device_train_batch_size=opts.batch_size,
        learning_rate=opts.learning_rate, warmup_steps=0.1, seed=opts.seed, data_seed=opts.seed,
        eval_strategy="steps", eval_steps=eval_steps, save_strategy="steps", save_steps=eval_steps,
        save_total_limit=2, load_best_model_at_end=True, metric_for_best_model=metric, greater_is_better=True,
        logging_steps=max(1, eval_steps // 2), report_to="none", use_cpu=True, dataloader_num_workers=0,
        disable_tqdm=False,
    )


def run_trainer(trainer: Any, checkpoints: Path, say: Callable[[str], None]) -> None:
    """Train, resuming from the newest checkpoint an interrupted run left in ``checkpoints``."""
    from transformers import TrainerCallback

    class _Fault(TrainerCallback):  # type: ignore[misc]
        def on_save(self, *args: Any, **kwargs: Any) -> None:
            from rag.core.faults import fault_point

            fault_point("tune-after-save")

    trainer.add_callback(_Fault())
    found = sorted(checkpoints.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1])) \
        if checkpoints.is_dir() else []
    if found:
        say(f"resuming from {found[-1].name} (an earlier run was interrupted; --restart ignores it)")
    trainer.train(resume_from_checkpoint=str(found[-1]) if found else None)
