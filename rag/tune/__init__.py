"""Layer 4, tuning: fine-tune the reranker and the embedder on suites read and scored by ``evals``.

May import ``rag.core``, ``ingest``, ``rag.query``, ``plugins`` and ``evals``; never ``rag.cli``.
"""
