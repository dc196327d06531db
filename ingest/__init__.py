"""Layer 1, the ingest stages: discover -> load -> chunk -> embed -> store, incremental and crash-safe.

Imports only ``rag.core``; never ``rag.query`` (its sibling), ``plugins``, ``evals``, ``rag.tune`` or ``rag.cli``.
"""
