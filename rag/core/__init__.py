"""Layer 0, the foundation: records, errors, settings, the home, the store, models, BM25, the manifest.

Imports nothing of the project outside ``rag.core``.
"""
