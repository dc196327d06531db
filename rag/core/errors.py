"""The project's exception hierarchy.

Library code raises these; only the command line turns them into one-line
messages and exit codes. Every message says what happened and what to do.
"""

from __future__ import annotations


class RagError(Exception):
    """Root of every expected failure in this project."""

    exit_code = 1


class ConfigError(RagError):
    """The configuration file, an environment override or an option is invalid."""

    exit_code = 2


class ModelLoadError(RagError):
    """A model (embedder, reranker, LLM) could not be loaded."""


class StoreError(RagError):
    """The vector store or the BM25 index cannot be used as asked."""


class DiskFullError(StoreError):
    """The disk holding the home has no room for a write; it was not made and what is stored is intact."""


class ManifestError(StoreError):
    """A collection's manifest database is damaged; ``rag doctor`` rebuilds it from the store."""


class StoreLockedError(StoreError):
    """Another process holds the writer lock of a collection."""


class CollectionNotFoundError(StoreError):
    """The named collection does not exist yet."""


class LoadError(RagError):
    """A document could not be read; the message is the reason shown to the user."""


class UnsupportedFileError(LoadError):
    """The file type is not one the loaders read (reported as skipped, not failed)."""
