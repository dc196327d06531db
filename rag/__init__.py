"""rag: chat with your own documents.

The floor plan (each module's layer is named by its path; ``tests/test_layers.py`` keeps it true):

0. ``rag.core``   foundation: records, errors, settings, home, store, models, BM25, manifest, prompts
1. ``ingest``     the ingest stages (discover, load, chunk, embed, store)   - siblings: neither
   ``rag.query``  the query stages (retrieve ... answer)                     imports the other
2. ``plugins``    retrievers (entry points) and their contract test
3. ``evals``      suites, metrics, judges, runs, reports
4. ``rag.tune``   fine-tuning the reranker and the embedder (reads suites, scores with ``evals``)
5. ``rag.serve``  the resident engine (``rag serve``): HTTP routes, the client the CLI uses, MCP
6. ``rag.cli``    the command line and everything that prints

A module imports only from its own layer or the layers below it.
"""
