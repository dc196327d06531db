"""A collection's entity graph as arrays: built from every chunk's names, kept in a file beside it.

The graph joins each chunk to the names it mentions (``rag.core.entities``; the walk over it is
``rag.query.graph``). Its file, ``<collection>/entity_graph.npz``, holds every chunk's names
(its payload's ``entities``) with its file, each file's manifest state, and the edge list built
from them, tagged with the collection's change counter (the manifest's ``generation``) and chunk
count. On use (the first graph hop after a change, and the end of an ingest):

- in step (same counter, same count): the edge list is loaded as it is, with no store read;
- else the manifest says which files changed since (their recorded state differs): only their
  chunks are read from the store, the others keep their names from the file, and the edges are
  rebuilt from the names (NumPy). When the chunk count then differs from the store's, or more
  than half the files changed, every chunk is read from the store instead;
- a file that is missing, unreadable, damaged or from another version is rebuilt from the store,
  with no error: it is derived data.

The file is written under a temporary name, fsynced and renamed (a kill -9 leaves the old file or
the new one, never half of one) and read with ``allow_pickle=False`` (a file planted in the home
cannot run code). Built either way, the graph is the same: chunks in id order (the store's scroll
order), names as the payloads hold them.
"""

from __future__ import annotations

import bisect
import json
import os
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol, Sequence

import numpy as np

from rag.core.disk import ensure_free, write_error
from rag.core.errors import StoreError
from rag.core.entities import ENTITIES, ENTITIES_VERSION, EXTRACTOR, chunk_keys
from rag.core.faults import fault_point
from rag.core.home import CollectionPaths

SUBJECT_WEIGHT = 8.0  # a chunk's first name (its subject, most often) against 1 for the others
ALIAS_WEIGHT = 0.5  # a shorter name inside one of the chunk's own names
MAX_DF_SHARE = 0.01  # names in more chunks than this share are left out ...
MIN_MAX_DF = 20  # ... but never below this many chunks
ALIAS_MIN_WORDS = 1  # the shortest name inside a longer one that counts as an alias

GRAPH_FILE = "entity_graph.npz"
FORMAT = 1
READ_BATCH = 256  # files per store read of changed files
FRESH_LIMIT = 200  # new names past which all aliases are found again (scans for each cost as much)
_END = "\x00"  # ends each string of a list kept as one UTF-8 blob


class _ChunkStore(Protocol):
    def scroll(self, with_payload: bool = ..., match: Any = ...) -> Iterable[tuple[str, Mapping[str, Any]]]: ...

    def count(self) -> int: ...


def build_signature() -> str:
    """What the edges depend on besides the names: a file built with other weights is rebuilt."""
    return f"{EXTRACTOR}|{SUBJECT_WEIGHT}|{ALIAS_WEIGHT}|{MAX_DF_SHARE}|{MIN_MAX_DF}|{ALIAS_MIN_WORDS}"


def stored_keys(payload: Mapping[str, Any]) -> list[str]:
    """A chunk's names: those the ingest stored, or extracted now (older chunks, another extractor)."""
    keys = payload.get(ENTITIES)
    if isinstance(keys, list) and payload.get(ENTITIES_VERSION) == EXTRACTOR:
        return [str(k) for k in keys]
    index = payload.get("chunk_index")
    return chunk_keys(str(payload.get("text", "")), str(payload.get("context") or ""),
                      index if isinstance(index, int) else None)


@dataclass(frozen=True, slots=True, eq=False)
class ChunkNames:
    """Every chunk's names as index arrays: what the graph is built from, and what its file keeps per chunk.

    Chunk ``ids[i]`` comes from file ``sources[source[i]]`` and mentions ``names[j]`` for each ``j``
    in ``flat[ptr[i]:ptr[i + 1]]``, in order. ``states[k]`` is file ``sources[k]``'s manifest state
    when its chunks were read ("" for a file the manifest does not hold). ``names`` is sorted (so
    the graph's vocabulary needs no sort of its own). Name ``j``'s aliases, the shorter names inside
    it that are in ``names`` too, are ``alias[alias_ptr[j]:alias_ptr[j + 1]]`` (shortest first, then
    left to right).
    """

    ids: list[str]
    source: np.ndarray
    sources: list[str]
    states: list[str]
    names: list[str]
    ptr: np.ndarray
    flat: np.ndarray
    alias_ptr: np.ndarray
    alias: np.ndarray

    @classmethod
    def of(cls, chunks: Iterable[tuple[str, str, Sequence[str]]], states: Mapping[str, str] | None = None) -> "ChunkNames":
        """``(chunk id, source, its names in order)`` triples, in the order given; ``states``: file -> manifest state."""
        files = {s: i for i, s in enumerate(states or {})}
        index: dict[str, int] = {}
        ids: list[str] = []
        source: list[int] = []
        flat: list[int] = []
        ptr = [0]
        for cid, src, keys in chunks:
            ids.append(cid)
            source.append(files.setdefault(src, len(files)))
            flat.extend(index.setdefault(k, len(index)) for k in keys)
            ptr.append(len(flat))
        names = sorted(index)
        rank = np.zeros(len(names), dtype=np.int64)
        rank[[index[n] for n in names]] = np.arange(len(names), dtype=np.int64)
        alias_ptr, alias = _csr(_aliases(names, {n: i for i, n in enumerate(names)}.get))
        known = states or {}
        return cls(ids, np.array(source, dtype=np.int64), list(files), [known.get(s, "") for s in files], names,
                   np.array(ptr, dtype=np.int64), rank[np.array(flat, dtype=np.int64)], alias_ptr, alias)

    def keys(self, i: int) -> list[str]:
        """Chunk ``i``'s names."""
        return [self.names[j] for j in self.flat[self.ptr[i]:self.ptr[i + 1]].tolist()]

    def take(self, chunks: np.ndarray) -> "ChunkNames":
        """These chunks (positions), in this order; files and names kept as they are."""
        ptr, at = _rows(self.ptr, chunks)
        return ChunkNames([self.ids[i] for i in chunks.tolist()], self.source[chunks], self.sources, self.states,
                          self.names, ptr, self.flat[at], self.alias_ptr, self.alias)


def _rows(ptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The offsets of these rows of a ragged array, and where their items are in the old one."""
    lengths = np.diff(ptr)[rows]
    new = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new[1:])
    return new, np.repeat(ptr[:-1][rows] - new[:-1], lengths) + np.arange(new[-1], dtype=np.int64)


def _present(values: np.ndarray, size: int) -> np.ndarray:
    """The distinct values (all below ``size``), ascending."""
    return np.flatnonzero(np.bincount(values, minlength=size))


def _finder(names: list[str]) -> Callable[[str], int | None]:
    """Where a name is in the sorted ``names`` (None: not there), without a dict of them all."""
    def find(name: str) -> int | None:
        at = bisect.bisect_left(names, name)
        return at if at < len(names) and names[at] == name else None

    return find


def _csr(lists: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    ptr = np.zeros(len(lists) + 1, dtype=np.int64)
    np.cumsum([len(x) for x in lists], out=ptr[1:])
    return ptr, np.fromiter((j for x in lists for j in x), dtype=np.int64, count=int(ptr[-1]))


def _aliases(targets: Iterable[str], find: Callable[[str], int | None]) -> list[list[int]]:
    """For each target name, the names inside it (whole words, shorter than it) that ``find`` knows: shortest first."""
    out = []
    for name in targets:
        words = name.split()
        found = []
        for size in range(ALIAS_MIN_WORDS, len(words)):
            for start in range(len(words) - size + 1):
                j = find(" ".join(words[start:start + size]))
                if j is not None:
                    found.append(j)
        out.append(found)
    return out


def _containing(names: Sequence[str], parts: Sequence[str]) -> set[int]:
    """Positions of the names that hold one of ``parts`` as whole words inside them (C-speed scans of one string)."""
    text = _END + _END.join(names) + _END
    starts = np.zeros(len(names) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, names), dtype=np.int64, count=len(names)) + 1, out=starts[1:])
    found: list[int] = []
    for part in parts:
        at = text.find(part)
        while at != -1:
            before, after = text[at - 1], text[at + len(part)]
            if before in " " + _END and after in " " + _END and not before == after == _END:
                found.append(at)
            at = text.find(part, at + 1)
    return set((np.searchsorted(starts, np.array(found, dtype=np.int64), side="right") - 1).tolist())


def _merge(kept: ChunkNames, read: ChunkNames, states: Mapping[str, str]) -> ChunkNames | None:
    """``kept`` and ``read`` as one, in id order, names and files not used any more left out; None if an id repeats."""
    ids = kept.ids + read.ids
    order = sorted(range(len(ids)), key=ids.__getitem__)  # two sorted runs: merged in one pass
    if any(ids[a] == ids[b] for a, b in zip(order, order[1:])):
        return None
    # the names of both, sorted: ``read``'s new names go between ``kept``'s
    m = len(kept.names)
    at = [bisect.bisect_left(kept.names, n) for n in read.names]
    new = [k for k, (n, a) in enumerate(zip(read.names, at)) if a == m or kept.names[a] != n]
    slots = np.array([at[k] for k in new], dtype=np.int64)  # sorted, as read.names is
    old_to = np.arange(m, dtype=np.int64) + np.searchsorted(slots, np.arange(m), side="right")
    read_to = old_to[np.minimum(np.array(at, dtype=np.int64), max(m - 1, 0))] if m else np.zeros(len(at), dtype=np.int64)
    read_to[new] = slots + np.arange(len(new), dtype=np.int64)
    fresh = np.zeros(m + len(new), dtype=bool)
    fresh[read_to[new]] = True
    table = list(kept.names)
    for slot, k in reversed(list(zip(slots.tolist(), new))):  # from the end, so the slots still hold
        table.insert(slot, read.names[k])
    files = {s: i for i, s in enumerate(kept.sources)}
    file_of = np.array([files.setdefault(s, len(files)) for s in read.sources], dtype=np.int64)
    source = np.concatenate([kept.source, file_of[read.source]])[order]
    ptr, where = _rows(np.concatenate([kept.ptr[:-1], kept.ptr[-1] + read.ptr]), np.array(order, dtype=np.int64))
    flat = np.concatenate([old_to[kept.flat], read_to[read.flat]])[where]
    # each file's state now (every file the manifest holds, and those of chunks it does not)
    file_list = list(files)
    used_files = sorted(set(states) | {file_list[i] for i in _present(source, len(file_list)).tolist()})
    file_at = {s: i for i, s in enumerate(used_files)}
    refile = np.array([file_at.get(s, -1) for s in files], dtype=np.int64)
    # the names still mentioned; the aliases of those that hold a new name are found again
    used = _present(flat, len(table))
    rename = np.full(len(table), -1, dtype=np.int64)
    rename[used] = np.arange(len(used))
    final = table if len(used) == len(table) else [table[i] for i in used.tolist()]
    added = np.flatnonzero(fresh[used])
    if len(added) > FRESH_LIMIT:
        alias_ptr, alias = _csr(_aliases(final, {n: i for i, n in enumerate(final)}.get))
    else:
        was = np.full(len(table), -1, dtype=np.int64)
        was[old_to] = np.arange(m, dtype=np.int64)
        alias_ptr, alias = _renamed_aliases(kept, was[used], rename[old_to], final, added)
    return ChunkNames([ids[i] for i in order], refile[source], used_files, [states.get(s, "") for s in used_files],
                      final, ptr, rename[flat], alias_ptr, alias)


def _renamed_aliases(kept: ChunkNames, was: np.ndarray, renamed: np.ndarray, final: list[str],
                     added: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The aliases of ``final``: name ``f`` was ``kept``'s ``was[f]`` (-1: new); ``kept``'s name ``j`` is now ``renamed[j]``."""
    redo = sorted(set(added.tolist()) | _containing(final, [final[i] for i in added.tolist()]))
    rows = np.flatnonzero(was >= 0)
    _, at = _rows(kept.alias_ptr, was[rows])
    row = np.repeat(rows, np.diff(kept.alias_ptr)[was[rows]])
    value = renamed[kept.alias[at]]
    keep = (value >= 0) & ~np.isin(row, redo)  # names no longer mentioned go; the redone rows are replaced
    found = _aliases((final[i] for i in redo), _finder(final))
    row = np.concatenate([row[keep], np.repeat(np.array(redo, dtype=np.int64), [len(x) for x in found])])
    value = np.concatenate([value[keep], np.fromiter((j for x in found for j in x), dtype=np.int64)])
    order = np.argsort(row, kind="stable")  # each name's aliases stay in their order
    alias_ptr = np.zeros(len(final) + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=len(final)), out=alias_ptr[1:])
    return alias_ptr, value[order]


@dataclass(frozen=True, slots=True, eq=False)
class GraphArrays:
    """The graph as an edge list: chunk ``ids[rows[e]]`` mentions name ``vocab[cols[e]]`` with ``weight[e]``.

    ``vocab`` is sorted; ``subject[i]`` is the column of chunk ``i``'s first name (what it is about,
    most often), -1 when it has none in the graph.
    """

    ids: list[str]
    vocab: list[str]
    rows: np.ndarray
    cols: np.ndarray
    weight: np.ndarray
    subject: np.ndarray

    def same(self, other: "GraphArrays") -> bool:
        """Whether both are the same graph: same chunks, names, edges (in order) and weights."""
        return (self.ids == other.ids and self.vocab == other.vocab and np.array_equal(self.rows, other.rows)
                and np.array_equal(self.cols, other.cols) and np.array_equal(self.weight, other.weight)
                and np.array_equal(self.subject, other.subject))


def build_edges(chunks: ChunkNames) -> GraphArrays:
    """The edge list of ``chunks``: each links to its names (its first weighs ``SUBJECT_WEIGHT``, the others 1)
    and to the shorter names inside them that chunks mention (``ALIAS_WEIGHT``); names in more than
    ``MAX_DF_SHARE`` of the chunks (at least ``MIN_MAX_DF``) link nothing.

    Edges come in the order a chunk-by-chunk pass meets them (a chunk's names in order, each
    followed by its aliases), so the walk adds its sums in the same order however the graph was made.
    """
    n, m, ptr, flat = len(chunks.ids), len(chunks.names), chunks.ptr, chunks.flat
    lengths = np.diff(ptr)
    row_of = np.repeat(np.arange(n, dtype=np.int64), lengths)  # per mention: its chunk
    pairs = np.sort(row_of * m + flat)
    distinct = pairs[np.concatenate([[True], pairs[1:] != pairs[:-1]])] if len(pairs) else pairs
    df = np.bincount(distinct % max(m, 1), minlength=m)
    max_df = max(MIN_MAX_DF, int(MAX_DF_SHARE * n))
    ok = (df > 0) & (df <= max_df)
    # per name: its aliases that link, in order
    candidates = np.repeat(np.arange(m, dtype=np.int64), np.diff(chunks.alias_ptr))
    linking = ok[chunks.alias] if len(chunks.alias) else np.zeros(0, dtype=bool)
    starts = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(np.bincount(candidates[linking], minlength=m), out=starts[1:])
    aliases = chunks.alias[linking]
    # every mention, then its aliases: (chunk, name, weight) in pass order
    per_mention = 1 + np.diff(starts)[flat]
    mention = np.repeat(np.arange(len(flat), dtype=np.int64), per_mention)
    step = np.arange(len(mention), dtype=np.int64) - np.repeat(np.cumsum(per_mention) - per_mention, per_mention)
    name = flat[mention]
    if len(aliases):
        name = np.where(step == 0, name, aliases[np.clip(starts[name] + step - 1, 0, len(aliases) - 1)])
    first = np.zeros(len(flat), dtype=bool)
    first[ptr[:-1][lengths > 0]] = True
    weight = np.where(step == 0, np.where(first[mention], SUBJECT_WEIGHT, 1.0), ALIAS_WEIGHT)
    row = row_of[mention]
    keep = ok[name] if m else np.zeros(0, dtype=bool)
    row, name, weight = row[keep], name[keep], weight[keep]
    # one edge per (chunk, name): where the pass first met it, with its largest weight
    pair, where, which = np.unique(row * m + name, return_index=True, return_inverse=True)
    best = np.zeros(len(pair))
    np.maximum.at(best, which, weight)
    order = np.argsort(where, kind="stable")
    pair, best = pair[order], best[order]
    rows, names = pair // max(m, 1), pair % max(m, 1)
    vocab_at = _present(names, m)  # in name order: ``chunks.names`` is sorted
    column = np.full(m, -1, dtype=np.int64)
    column[vocab_at] = np.arange(len(vocab_at), dtype=np.int64)
    subject = np.full(n, -1, dtype=np.int64)
    has = lengths > 0
    subject[has] = column[flat[ptr[:-1][has]]]
    return GraphArrays(list(chunks.ids), [chunks.names[i] for i in vocab_at.tolist()], rows.astype(np.int64),
                       column[names], best.astype(np.float64), subject)


# -- the file -----------------------------------------------------------------


def _blob(items: Sequence[str]) -> np.ndarray:
    return np.frombuffer((_END.join(items) + _END if items else "").encode("utf-8"), dtype=np.uint8)


def _strings(blob: np.ndarray) -> list[str]:
    return blob.tobytes().decode("utf-8").split(_END)[:-1]


def _in_range(values: np.ndarray, low: int, high: int) -> bool:
    return not len(values) or (int(values.min()) >= low and int(values.max()) < high)


def _offsets(ptr: np.ndarray, rows: int, items: int) -> bool:
    return len(ptr) == rows + 1 and int(ptr[0]) == 0 and int(ptr[-1]) == items and not bool(np.any(np.diff(ptr) < 0))


class GraphFile:
    """An open graph file; each part is read (and checked) when asked for. Unusable parts read as None."""

    _damage = (OSError, ValueError, KeyError, EOFError, IndexError, TypeError, zipfile.BadZipFile)

    def __init__(self, npz: Any, meta: Mapping[str, Any]) -> None:
        self._npz = npz
        self.generation: int | None = meta.get("generation")
        self.count = int(meta["count"])

    @classmethod
    def open(cls, path: Path) -> "GraphFile | None":
        """The file at ``path``, or None when it is missing, damaged, or written by another version."""
        try:
            npz = np.load(path, allow_pickle=False)
        except cls._damage:  # missing too
            return None
        if not isinstance(npz, np.lib.npyio.NpzFile):  # a lone array, not an archive of them
            return None
        try:
            meta = json.loads(npz["meta"].tobytes().decode("utf-8"))
            if meta.get("format") != FORMAT or meta.get("build") != build_signature() or not isinstance(meta["count"], int):
                raise ValueError("another version")
            return cls(npz, meta)
        except cls._damage:
            npz.close()
            return None

    def edges(self) -> GraphArrays | None:
        """The edge list as it was built."""
        try:
            ids, vocab = _strings(self._npz["ids"]), _strings(self._npz["vocab"])
            rows, cols = self._npz["rows"].astype(np.int64), self._npz["cols"].astype(np.int64)
            weight, subject = self._npz["weight"].astype(np.float64), self._npz["subject"].astype(np.int64)
            n = len(ids)
            if (n != self.count or len(subject) != n or not len(rows) == len(cols) == len(weight)
                    or not _in_range(rows, 0, n) or not _in_range(cols, 0, len(vocab))
                    or not _in_range(subject, -1, len(vocab))):
                raise ValueError("parts disagree")
        except self._damage:
            return None
        return GraphArrays(ids, vocab, rows, cols, weight, subject)

    def chunk_names(self) -> ChunkNames | None:
        """Every chunk's names and file, as kept."""
        try:
            ids, sources, states = _strings(self._npz["ids"]), _strings(self._npz["sources"]), _strings(self._npz["states"])
            names = _strings(self._npz["names"])
            source, ptr = self._npz["source"].astype(np.int64), self._npz["ptr"].astype(np.int64)
            flat = self._npz["flat"].astype(np.int64)
            alias_ptr, alias = self._npz["alias_ptr"].astype(np.int64), self._npz["alias"].astype(np.int64)
            n = len(ids)
            if (n != self.count or len(source) != n or len(states) != len(sources) or not _offsets(ptr, n, len(flat))
                    or not _offsets(alias_ptr, len(names), len(alias)) or not _in_range(source, 0, len(sources))
                    or not _in_range(flat, 0, len(names)) or not _in_range(alias, 0, len(names))):
                raise ValueError("parts disagree")
        except self._damage:
            return None
        return ChunkNames(ids, source, sources, states, names, ptr, flat, alias_ptr, alias)

    def close(self) -> None:
        self._npz.close()


def write_graph(path: Path, chunks: ChunkNames, edges: GraphArrays, generation: int | None) -> None:
    """Write the file atomically: a temporary file, fsynced, then renamed over the old one."""
    meta = {"format": FORMAT, "build": build_signature(), "generation": generation, "count": len(chunks.ids)}
    arrays = {
        "meta": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
        "ids": _blob(chunks.ids), "sources": _blob(chunks.sources), "states": _blob(chunks.states),
        "names": _blob(chunks.names), "source": chunks.source.astype(np.int32), "ptr": chunks.ptr,
        "flat": chunks.flat.astype(np.int32), "alias_ptr": chunks.alias_ptr, "alias": chunks.alias.astype(np.int32),
        "vocab": _blob(edges.vocab), "rows": edges.rows.astype(np.int32),
        "cols": edges.cols.astype(np.int32), "weight": edges.weight.astype(np.float32),
        "subject": edges.subject.astype(np.int32),
    }
    ensure_free(path.parent, need=2 * sum(a.nbytes for a in arrays.values()))
    _remove_leftovers(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        fault_point("graph_written")
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_error(exc, path) from None


def _remove_leftovers(path: Path) -> None:
    """Temporary files of writers that died (kill -9) before their rename."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            os.kill(int(tmp.name.split(".")[-3]), 0)
        except (ValueError, IndexError, ProcessLookupError):
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # alive under another user


# -- keeping it in step -----------------------------------------------------------


def manifest_states(path: Path) -> dict[str, str]:
    """Each file's recorded state (content hash, pipeline, pending or done), from the manifest at ``path``."""
    from rag.core.manifest import Manifest

    if not path.exists():
        return {}
    manifest = Manifest(path)
    try:
        return {s: f"{r.file_hash} {r.pipeline} {r.state}" for s, r in sorted(manifest.files().items())}
    finally:
        manifest.close()


def read_store(store: _ChunkStore, states: Mapping[str, str]) -> ChunkNames:
    """Every chunk's names, read from the store (in id order)."""
    chunks = ((cid, str(p.get("source", "")), stored_keys(p)) for cid, p in store.scroll(with_payload=True))
    return ChunkNames.of(sorted(chunks, key=lambda c: c[0]), states)


def _read_files(store: _ChunkStore, sources: Sequence[str]) -> Iterator[tuple[str, str, list[str]]]:
    for start in range(0, len(sources), READ_BATCH):
        for cid, p in store.scroll(with_payload=True, match={"source": list(sources[start:start + READ_BATCH])}):
            yield cid, str(p.get("source", "")), stored_keys(p)


def update_names(kept: ChunkNames, store: _ChunkStore, states: Mapping[str, str], count: int) -> ChunkNames | None:
    """``kept`` with the chunks of the files whose manifest state changed read again from the store.

    Returns ``kept`` itself when no file changed, and None when unsure (the chunk count then differs
    from the store's ``count``, an id repeats) or when more than half the files changed: then the
    whole store is read instead.
    """
    before = dict(zip(kept.sources, kept.states))
    # a file the manifest does not hold (another writer's) counts as unchanged, as its changes do not
    # move this collection's counter either; one it held and no longer does was deleted
    changed = sorted(s for s in set(states) | set(before) if states.get(s, "") != before.get(s, ""))
    if not changed:
        return kept if len(kept.ids) == count else None
    if len(changed) > max(1, len(states) // 2):
        return None
    stale = set(changed)
    again = np.isin(kept.source, [i for i, s in enumerate(kept.sources) if s in stale])
    read = ChunkNames.of(sorted(_read_files(store, changed), key=lambda c: c[0]))
    merged = _merge(kept.take(np.flatnonzero(~again)), read, states)
    return merged if merged is not None and len(merged.ids) == count else None


def graph_in_step(paths: CollectionPaths, generation: int | None, count: int) -> bool:
    """Whether the graph's file was made at this change counter and chunk count (reads its header only)."""
    stored = GraphFile.open(paths.root / GRAPH_FILE)
    if stored is None:
        return False
    stored.close()
    return generation is not None and (stored.generation, stored.count) == (generation, count)


def sync_graph(store: _ChunkStore, paths: CollectionPaths, generation: int | None, count: int | None = None,
               must_write: bool = True) -> tuple[GraphArrays, str]:
    """The collection's graph, and how it was made: ``loaded``, ``updated`` or ``built`` (from the store).

    ``generation`` is the collection's change counter, read before the store (a change made while
    the store is read leaves the file older than the collection, and the next use updates it
    again); None for a collection older than the counter (then the manifest is compared each time).
    The file is written back unless it was in step; when it cannot be, StoreError (or DiskFullError)
    is raised if ``must_write``, else the graph is returned all the same.
    """
    path = paths.root / GRAPH_FILE
    count = store.count() if count is None else count
    stored = GraphFile.open(path)
    edges: GraphArrays | None = None
    try:
        if stored is not None and generation is not None and (stored.generation, stored.count) == (generation, count):
            edges = stored.edges()
            if edges is not None:
                return edges, "loaded"
            stored.close()  # damaged: rebuilt from the store
            stored = None
        states = manifest_states(paths.manifest)
        kept = stored.chunk_names() if stored is not None else None
        chunks = update_names(kept, store, states, count) if kept is not None else None
        if stored is not None and chunks is not None and chunks is kept:  # no file changed since
            edges = stored.edges()
            if edges is None:
                chunks = None
            elif stored.generation == generation:
                return edges, "loaded"
        if chunks is None:
            chunks, how = read_store(store, states), "built"
        else:
            how = "loaded" if edges is not None else "updated"
        edges = edges or build_edges(chunks)
    finally:
        if stored is not None:
            stored.close()
    try:
        write_graph(path, chunks, edges, generation)
    except StoreError:
        if must_write:
            raise
    return edges, how
