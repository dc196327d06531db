"""``rag tune embedder``: fine-tune the bi-encoder with MultipleNegativesRankingLoss and mined hard negatives.

Training triplets are (question, gold passage, hard negative) from the same mining as
``rag tune reranker``; the other passages of a batch are further negatives. A held-out
slice of questions, searched over their candidate passages (what hybrid search
retrieved for them, plus the gold), gives nDCG@10 before and after and picks the best
checkpoint. With ``reembed`` each training corpus is indexed again with the new model
in ``<collection>-tuned`` (the original collection is left as it was).
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from rag.core.config import EmbeddingConfig, Settings
from rag.tune.reranker import TuneOptions, prepare, run_trainer, training_args
from rag.tune.mine import IngestProgressFactory, Mined, index_corpus

__all__ = ["tune_embedder"]


def _id(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def heldout_evaluator(held: Sequence[Mined]) -> Any:
    """An InformationRetrievalEvaluator over the held-out questions' candidate passages."""
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    corpus: dict[str, str] = {}
    relevant: dict[str, set[str]] = {}
    queries: dict[str, str] = {}
    for m in held:
        queries[m.qid] = m.query
        gold = [c.text for c in m.candidates if c.gold] + list(m.positives)
        relevant[m.qid] = {_id(t) for t in gold}
        for text in gold + [c.text for c in m.candidates]:
            corpus[_id(text)] = text
    return InformationRetrievalEvaluator(queries, corpus, relevant, name="heldout", write_csv=False,
                                         ndcg_at_k=[10], mrr_at_k=[10], accuracy_at_k=[1, 10],
                                         precision_recall_at_k=[10], map_at_k=[100])


def tune_embedder(opts: TuneOptions, settings: Settings, home: Path, say: Callable[[str], None],
                  reembed: bool = False, ingest_progress: IngestProgressFactory | None = None) -> dict[str, Any]:
    """Fine-tune, save a full SentenceTransformer folder to ``opts.out``; returns the summary."""
    import torch

    torch.set_num_threads(max(1, opts.threads))
    started = time.perf_counter()
    prep = prepare(opts, settings, home, say, ingest_progress)
    triplets: dict[str, list[str]] = {"anchor": [], "positive": [], "negative": []}
    for m in prep.train:
        if m.negatives:
            triplets["anchor"].append(m.query)
            triplets["positive"].append(m.positives[0])
            triplets["negative"].append(m.negatives[0])
    say(f"{len(triplets['anchor'])} training triplets; {len(prep.held)} held-out questions")

    from rag.core.embed import prepare_offline, resolve_model

    target, offline = resolve_model(opts.base, setting="--base")
    prepare_offline(offline)
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(opts.seed)
    model = SentenceTransformer(target, device="cpu")
    evaluator = heldout_evaluator(prep.held)
    key = "heldout_cosine_ndcg@10"
    before = float(evaluator(model)[key])
    say(f"held-out nDCG@10 (dense, over the candidates) before training: {before:.4f}")
    prepared = time.perf_counter()
    _train(model, triplets, evaluator, opts, say)
    trained = time.perf_counter()
    after = float(evaluator(model)[key])
    say(f"held-out nDCG@10 after training: {after:.4f}")
    opts.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(opts.out))
    shutil.rmtree(opts.out / "checkpoints", ignore_errors=True)
    summary: dict[str, Any] = {
        "sources": prep.notes, "base": opts.base, "training_triplets": len(triplets["anchor"]),
        "heldout": {"questions": len(prep.held), "ndcg@10_before": round(before, 4), "ndcg@10_after": round(after, 4)},
        "seconds": {"prepare": round(prepared - started, 1), "train": round(trained - prepared, 1)},
        "out": str(opts.out),
    }
    if reembed:
        tuned = settings.model_copy(update={"embedding": EmbeddingConfig.model_validate(
            {**settings.embedding.model_dump(), "model": str(opts.out.resolve())})})
        summary["reembedded"] = []
        for data in prep.data:
            from dataclasses import replace

            renamed = replace(data, name=f"{data.name}-tuned")
            collection, ingest = index_corpus(renamed, tuned, home, ingest_progress)
            say(f"re-embedded {ingest['chunks_total']} chunks into '{collection}'")
            summary["reembedded"].append({"collection": collection, **ingest})
    return summary


def _train(model: Any, triplets: dict[str, list[str]], evaluator: Any, opts: TuneOptions,
           say: Callable[[str], None]) -> None:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from transformers import EarlyStoppingCallback

    dataset = Dataset.from_dict(triplets).shuffle(seed=opts.seed)
    args = SentenceTransformerTrainingArguments(
        **training_args(opts, len(dataset), "eval_heldout_cosine_ndcg@10"), batch_sampler="no_duplicates")
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=dataset, loss=MultipleNegativesRankingLoss(model),
        evaluator=evaluator, callbacks=[EarlyStoppingCallback(early_stopping_patience=opts.patience)],
    )
    run_trainer(trainer, opts.out / "checkpoints", say)
