"""Layer 2, plugins: the built-in retrievers (entry points ``rag.retrievers``) and the contract test.

May import ``rag.core``, ``ingest`` and ``rag.query``; never ``evals``, ``rag.tune`` or ``rag.cli``.
"""
