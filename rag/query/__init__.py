"""Layer 1, the query stages: retrieve, fuse, rerank, route, multi-hop, expand, generate, cite, answer.

Imports only ``rag.core``; never ``ingest`` (its sibling), ``plugins``, ``evals``, ``rag.tune`` or ``rag.cli``.
"""
