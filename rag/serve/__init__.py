"""The resident engine (``rag serve``): one process owns the collections and the models.

The command line, the OpenAI-compatible HTTP API and the MCP server are its clients. Layer 5: it
may use everything below it (``rag.core``, ``ingest``, ``rag.query``, ``plugins``, ``evals``,
``rag.tune``); only ``rag.cli`` sits above it.
"""
