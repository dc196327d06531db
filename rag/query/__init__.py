"""Layer 1, the query stages: rewrite, route, expand, retrieve, merge, rerank, multi-hop, generate, cite, answer.

Imports only ``rag.core``; never ``ingest`` (its sibling), ``plugins``, ``evals``, ``rag.tune`` or ``rag.cli``.
"""
