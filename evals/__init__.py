"""Layer 3, evaluation: suites, metrics, judges, runs and reports.

May import ``rag.core``, ``ingest``, ``rag.query`` and ``plugins``; never ``rag.tune`` or ``rag.cli``.
"""
