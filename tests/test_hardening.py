"""Issue 23: hostile folders, broken state and full disks give a one-line error or a correct result.

Every numbered case of the issue has a test here, on real files, real permissions (the unreadable
folder is read by a process without root's file capabilities), a real small file system (tmpfs) for the full disk and a
real local HTTP server standing in for a Qdrant server that echoes the API key. The hostile-folder
fixture (loops, bad names, markup, escapes, an unreadable folder, deep nesting) is ingested, searched
and re-ingested with nothing lost.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from ingest.discover import discover
from ingest.doctor import doctor
from ingest.pipeline import Ingestor
from rag.core.bm25 import Bm25Index
from rag.core.lexical import Analyzer
from rag.core.config import Settings, load_settings
from rag.core.errors import ConfigError, ManifestError, StoreError
from rag.core.home import collection_paths
from rag.core.manifest import Manifest
from rag.core.names import source_of, source_path
from rag.query.retrieve import parse_filters
from rag.query.search import Searcher
from tests.conftest import REPO, write
from tests.test_pipeline import store_state

BAD_NAME = os.fsdecode(b"bad\xffname.txt")  # not UTF-8: Python holds it with a lone surrogate
MARKUP_DIR = "x["  # with the file "oops]y.txt" inside, the path reads .../x[/oops]y.txt
ESCAPE_TEXT = "\x1b[2J\x1b]0;pwned\x07rag: done"


def drop_file_capabilities() -> None:
    """In a child about to exec: give up root's power to read and enter any file (CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH leave the bounding set, so the exec'd program never regains them)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def rag(home: Path, *args: str, env: dict[str, str] | None = None, unprivileged: bool = False,
        timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """The real command line in a child process; ``unprivileged``: file permissions apply even as root."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), **(env or {})}
    preexec = drop_file_capabilities if unprivileged and os.geteuid() == 0 else None
    return subprocess.run([sys.executable, "-m", "rag.cli", "--home", str(home), *args], capture_output=True,
                          text=True, errors="replace", env=full_env, timeout=timeout, preexec_fn=preexec)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The single ``rag: error:`` line (warnings may precede it; a traceback may not)."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("rag: warning: ")]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("rag: error: ")
    return lines[0]


# -- the hostile folder ---------------------------------------------------------------------------

DEEP = 120  # levels of nesting in the fixture (the discovery test below goes past 1,100)


def build_hostile(root: Path) -> dict[str, str]:
    """A folder a hostile user could hand to `rag ingest`; returns {unique word: file name} of what must go in."""
    words = {
        "aardvark": "plain.txt",
        "bandicoot": BAD_NAME,
        "capybara": "oops]y.txt",
        "dugong": "[red]x.txt",
        "echidna": "escapes.md",
        "fennec": "deep.txt",
        "gharial": "locked.txt",
    }
    write(root / "plain.txt", "The aardvark digs for termites at night.\n" * 5)
    write(root / os.fsdecode(b"bad\xffname.txt"), "The bandicoot has a pouch that opens backwards.\n" * 5)
    write(root / MARKUP_DIR / "oops]y.txt", "The capybara is the largest living rodent.\n" * 5)
    write(root / "[red]x.txt", "The dugong grazes on seagrass meadows [bold]calmly[/bold].\n" * 5)
    write(root / "escapes.md", "# Echidna\n\n" + "The echidna lays eggs. " * 10 + ESCAPE_TEXT + " echidna.\n")
    deep = root.joinpath(*(["d"] * DEEP))
    write(deep / "deep.txt", "The fennec fox has very large ears.\n" * 5)
    write(root / "locked" / "locked.txt", "The gharial has a long thin snout.\n" * 5)
    os.chmod(root / "locked", 0o000)  # root reads it anyway; the unprivileged test below cannot
    (root / "loops").mkdir()
    os.symlink(".", root / "loops" / "self")
    os.symlink("../loops", root / "loops" / "parent")
    os.symlink("l2", root / "loops" / "l1")
    os.symlink("l1", root / "loops" / "l2")
    os.symlink("nowhere", root / "loops" / "dangling")
    return words


@pytest.fixture()
def hostile(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """The hostile folder (its unreadable folder is made readable again afterwards, for cleanup)."""
    root = tmp_path / "hostile"
    words = build_hostile(root)
    yield root, words
    os.chmod(root / "locked", 0o755)


def test_hostile_folder_ingest_search_reingest(settings: Settings, rag_home: Path, embedder, hostile) -> None:  # type: ignore[no-untyped-def]
    root, words = hostile
    if os.geteuid() != 0:
        words = {w: n for w, n in words.items() if n != "locked.txt"}
    first = Ingestor(settings, rag_home, embedder=embedder).run([root])
    assert first.files_added == len(words), first
    reasons = {Path(s.path).name: s.reason for s in first.files_skipped}
    assert reasons["self"].startswith("symbolic link inside the folder")
    assert reasons["l1"] == reasons["l2"] == "symbolic link loop"
    assert reasons["dangling"].startswith("broken symbolic link")
    state = store_state(settings, rag_home)
    sources = {p["source"] for p in state.values()}
    for source in sources:
        assert source_path(source).exists() and source_of(source_path(source)) == source
    searcher = Searcher(settings, rag_home, retriever="hybrid", rerank=False)
    try:
        for word, name in words.items():
            hits = searcher.search(word, 3).results
            assert any(source_path(h.source).name == name for h in hits), (word, [h.source for h in hits])
    finally:
        searcher.close()
    again = Ingestor(settings, rag_home, embedder=embedder).run([root])
    assert (again.files_unchanged, again.files_added, again.files_deleted, again.chunks_embedded) == (len(words), 0, 0, 0)
    assert store_state(settings, rag_home) == state


@pytest.mark.slow
def test_hostile_folder_reingested_without_root_loses_nothing(settings: Settings, rag_home: Path, embedder,  # type: ignore[no-untyped-def]
                                                              hostile) -> None:
    root, words = hostile
    if os.geteuid() != 0:
        pytest.skip("the first ingest needs root to read the locked folder")
    settings = Settings()  # what the command line below uses
    first = Ingestor(settings, rag_home, embedder=embedder).run([root])
    state = store_state(settings, rag_home)
    proc = rag(rag_home, "ingest", str(root), "--json", unprivileged=True)
    assert proc.returncode == 3, proc.stderr
    report = json.loads(proc.stdout)
    assert [f["path"] for f in report["files_failed"]] == [str(root / "locked")]
    assert (report["files_unchanged"], report["files_deleted"], report["chunks_removed"]) == (first.files_added - 1, 0, 0)
    assert store_state(settings, rag_home) == state
    search = rag(rag_home, "search", "gharial snout", "-k", "1", "--no-rerank", "--json", unprivileged=True)
    assert search.returncode == 0 and json.loads(search.stdout)["results"][0]["source"] == str(root / "locked" / "locked.txt")


# -- 1. a symbolic link loop ----------------------------------------------------------------------

def test_1_symlink_loop_does_not_abort(tmp_path: Path) -> None:
    root = tmp_path / "d"
    write(root / "a.txt", "a")
    write(root / "sub" / "b.txt", "b")
    os.symlink(".", root / "sub" / "self")
    os.symlink("l2", root / "l1")
    os.symlink("l1", root / "l2")
    for follow in (False, True):
        found = discover([root], follow_symlinks=follow)
        assert sorted(Path(f.source).name for f in found.files) == ["a.txt", "b.txt"]
        assert {Path(s.source).name for s in found.skipped} == {"self", "l1", "l2"}


# -- 2. a file name that is not UTF-8 --------------------------------------------------------------

def test_2_non_utf8_name_round_trips(settings: Settings, rag_home: Path, embedder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "d"
    bad = write(root / BAD_NAME, "Bandicoots are small marsupials.\n" * 3)
    backslash = write(root / "back\\xffslash.txt", "A literal backslash and x f f in the name.\n" * 3)
    report = Ingestor(settings, rag_home, embedder=embedder).run([root])
    assert report.files_added == 2 and report.files_failed == ()
    rows = Manifest(collection_paths(rag_home, "default").manifest)
    try:
        sources = sorted(rows.files())
    finally:
        rows.close()
    assert sources == sorted([str(root) + "/back\\\\xffslash.txt", str(root) + "/bad\\xffname.txt"])
    assert {os.fsencode(source_path(s)) for s in sources} == {os.fsencode(bad), os.fsencode(backslash)}
    assert Ingestor(settings, rag_home, embedder=embedder).run([root]).files_unchanged == 2
    bad.unlink()
    gone = Ingestor(settings, rag_home, embedder=embedder).run([root])
    assert gone.deleted == (str(root) + "/bad\\xffname.txt",)


# -- 3. markup and terminal escapes in names and text ----------------------------------------------

@pytest.mark.slow
def test_3_names_and_text_print_safely(tmp_path: Path) -> None:
    root = tmp_path / "d"
    write(root / MARKUP_DIR / "oops]y.txt", "Capybaras live near water.\n" * 3)
    write(root / "[red]x.txt", "Dugongs eat seagrass.\n" * 3)
    write(root / "esc.md", "# Echidna\n\n" + "The echidna lays eggs. " * 10 + ESCAPE_TEXT + "\n")
    write(root / ("tab\x1b[31mname.txt"), "Quolls are spotted.\n" * 3)
    home = tmp_path / "h"
    ingest = rag(home, "ingest", str(root))
    assert ingest.returncode == 0, ingest.stderr
    out = ingest.stdout + ingest.stderr
    assert "Traceback" not in out and "\x1b" not in out
    assert "files: 4 added" in " ".join(out.split())
    for query, shown in [("capybaras water", "x[/oops]y.txt"), ("dugongs seagrass", "[red]x.txt"),
                         ("quolls spotted", "tab\\x1b[31mname.txt"), ("echidna eggs", "\\x1b[2J")]:
        found = rag(home, "search", query, "-k", "1", "--no-rerank")
        assert found.returncode == 0, found.stderr
        text = found.stdout.replace("\n", "")
        assert "\x1b" not in found.stdout and "Traceback" not in found.stderr
        assert shown in text, (query, found.stdout)


def test_3_text_helpers() -> None:
    from rag.cli.text import markup, plain

    assert plain("a\x1b[2Jb\x07\u202ec\nd") == "a\\x1b[2Jb\\x07\\u202ec\\nd"
    assert plain("line\nnext", newlines=True) == "line\nnext"
    assert plain(BAD_NAME) == "bad\\udcffname.txt"
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(f"[bold]{markup('x[/oops]y [red]z')}[/]")  # would raise MarkupError unescaped
    assert "x[/oops]y [red]z" in console.export_text()


# -- 4. a full disk ---------------------------------------------------------------------------------

@pytest.fixture()
def small_disk() -> Iterator[Path]:
    """A real 160 MiB tmpfs (needs root and permission to mount; skipped otherwise)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mnt = Path(tempfile.mkdtemp(prefix="rag-full-"))
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if proc.returncode != 0:
        mnt.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        mnt.rmdir()


def _fill(mnt: Path, leave_mib: int) -> Path:
    filler = mnt / "filler"
    free = shutil.disk_usage(mnt).free - (leave_mib << 20)
    with open(filler, "wb") as fh:
        block = b"\0" * (1 << 20)
        while free > 0:
            fh.write(block[: min(free, len(block))])
            free -= len(block)
    return filler


@pytest.mark.slow
def test_4_disk_full_is_one_line_and_state_survives(tmp_path: Path, small_disk: Path, docs: Path) -> None:
    home = small_disk / "home"
    first = rag(home, "ingest", str(docs), "--json")
    assert first.returncode == 0, first.stderr
    write(docs / "later.txt", "Later notes about basil, which wants warmth and daily water.\n" * 4)
    filler = _fill(small_disk, leave_mib=8)
    for args in (["ingest", str(docs)], ["search", "fungus gnats", "--no-rerank"], ["status"]):
        proc = rag(home, *args)
        assert proc.returncode == 1, (args, proc.returncode, proc.stderr)  # not 135 (SIGBUS)
        line = one_line_error(proc)
        assert f"the disk {small_disk}" in line and "is full" in line and "intact" in line, line
    filler.unlink()
    found = rag(home, "search", "fungus gnats in wet soil", "-k", "1", "--no-rerank", "--json")
    assert found.returncode == 0 and json.loads(found.stdout)["results"][0]["source"].endswith("pests.html")
    again = rag(home, "ingest", str(docs), "--json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert (report["files_added"], report["files_unchanged"], report["files_deleted"]) == (1, 3, 0)


# -- 5. corrupt state: manifest, BM25 index, store --------------------------------------------------

def test_5_corrupt_manifest_is_rebuilt_by_doctor(settings: Settings, rag_home: Path, embedder, docs: Path) -> None:  # type: ignore[no-untyped-def]
    Ingestor(settings, rag_home, embedder=embedder).run([docs])
    before = store_state(settings, rag_home)
    paths = collection_paths(rag_home, "default")
    for side in paths.root.glob("manifest.sqlite3-*"):
        side.unlink()
    paths.manifest.write_bytes(os.urandom(4096))
    with pytest.raises(ManifestError, match="damaged.*run `rag doctor`"):
        Manifest(paths.manifest)
    proc = rag(rag_home, "status")
    assert proc.returncode == 1 and "rag doctor" in one_line_error(proc)
    findings = doctor(settings, rag_home, repair=False)
    assert [(f.part, f.state) for f in findings if f.part == "manifest"] == [("manifest", "damaged")]
    findings = doctor(settings, rag_home)
    assert ("manifest", "repaired") in [(f.part, f.state) for f in findings]
    again = Ingestor(settings, rag_home, embedder=embedder).run([docs])
    assert (again.files_unchanged, again.files_added, again.chunks_embedded) == (3, 0, 0)
    assert store_state(settings, rag_home) == before
    for path in paths.root.glob("manifest.sqlite3*"):  # deleted outright: rebuilt the same way
        path.unlink()
    assert ("manifest", "repaired") in [(f.part, f.state) for f in doctor(settings, rag_home)]
    assert Ingestor(settings, rag_home, embedder=embedder).run([docs]).files_unchanged == 3


def test_5_damaged_bm25_index_is_rebuilt(settings: Settings, rag_home: Path, embedder, docs: Path) -> None:  # type: ignore[no-untyped-def]
    Ingestor(settings, rag_home, embedder=embedder).run([docs])
    folder = collection_paths(rag_home, "default").bm25
    info = Bm25Index.read_info(folder)
    assert info is not None and info.file.endswith(".npz")
    index_file = folder / info.file
    index_file.write_bytes(index_file.read_bytes()[:100])  # truncated
    from rag.cli.status import collect_status

    (col,) = collect_status(settings, rag_home)["collections"]
    assert col["bm25_in_step"] is False and "rag doctor" in col["bm25_problem"]
    searcher = Searcher(settings, rag_home, retriever="bm25", rerank=False)
    try:  # a bm25 search rebuilds a damaged index from the store before it loads it
        assert searcher.search("fungus gnats", 3).results[0].source.endswith("pests.html")
    finally:
        searcher.close()
    assert Bm25Index.problem(folder) is None
    index_file = folder / Bm25Index.read_info(folder).file  # type: ignore[union-attr]
    index_file.write_bytes(index_file.read_bytes()[:100])
    report = Ingestor(settings, rag_home, embedder=embedder).run([docs])  # and so does an ingest
    assert report.bm25_rebuilt and Bm25Index.problem(folder) is None
    index_file = folder / Bm25Index.read_info(folder).file  # type: ignore[union-attr]
    index_file.write_bytes(b"junk")
    assert [(f.part, f.state) for f in doctor(settings, rag_home) if f.part == "bm25"] == [("bm25", "repaired")]
    searcher = Searcher(settings, rag_home, retriever="bm25", rerank=False)
    try:
        assert searcher.search("fungus gnats", 3).results[0].source.endswith("pests.html")
    finally:
        searcher.close()


class _Planted:
    """Unpickling this runs code: it would create the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (self.marker, "w"))


def test_5_and_10_old_pickle_index_is_never_loaded(settings: Settings, rag_home: Path, embedder, docs: Path,  # type: ignore[no-untyped-def]
                                                   tmp_path: Path) -> None:
    Ingestor(settings, rag_home, embedder=embedder).run([docs])
    folder = collection_paths(rag_home, "default").bm25
    for old in folder.iterdir():
        old.unlink()
    marker = tmp_path / "pwned"
    (folder / "index-0123456789abcdef.pkl").write_bytes(pickle.dumps(_Planted(str(marker))))
    pointer = {"fingerprint": "x", "count": 7, "file": "index-0123456789abcdef.pkl", "built_at": 0.0,
               "k1": 1.2, "b": 0.75, "analyzer": "english:1"}  # the format-1 pointer had no "format" key
    (folder / "current.json").write_text(json.dumps(pointer))
    with pytest.raises(StoreError, match="old format.*rag doctor"):
        Bm25Index.load(folder, Analyzer())
    report = Ingestor(settings, rag_home, embedder=embedder).run([docs])
    assert report.bm25_rebuilt and not marker.exists()
    assert sorted(p.suffix for p in folder.iterdir()) == [".json", ".npz"]
    (folder / "index-0123456789abcdef.pkl").write_bytes(pickle.dumps(_Planted(str(marker))))
    (folder / "current.json").write_text(json.dumps(pointer))
    searcher = Searcher(settings, rag_home, retriever="bm25", rerank=False)
    try:  # a bm25 search rebuilds it from the store too, and never unpickles the planted file
        assert searcher.search("fungus gnats", 3).results[0].source.endswith("pests.html")
    finally:
        searcher.close()
    assert not marker.exists()


def test_bm25_scores_match_rank_bm25(settings: Settings) -> None:
    from rank_bm25 import BM25Okapi

    from rag.core.lexical import Analyzer

    analyzer = Analyzer()
    texts = ["the cat sat on the mat", "dogs chase cats", "a mat for a dog", "cats and dogs and cats",
             "nothing relevant here", "mat mat mat"]
    index = Bm25Index.build([(f"id{i}", t) for i, t in enumerate(texts)], analyzer, 1.2, 0.75)
    reference = BM25Okapi([analyzer.tokens(t) for t in texts], k1=1.2, b=0.75)
    for query in ["cat mat", "dogs", "mat mat", "zebra", "cats dogs mat"]:
        terms = analyzer.tokens(query)
        assert index.scores(terms).tolist() == pytest.approx(list(reference.get_scores(terms)))


@pytest.mark.slow
def test_5_damaged_store_names_the_collection_to_reingest(settings: Settings, rag_home: Path, embedder, docs: Path) -> None:  # type: ignore[no-untyped-def]
    Ingestor(settings, rag_home, embedder=embedder).run([docs])
    segments = collection_paths(rag_home, "default").root / "qdrant" / "segments"
    for seg in segments.iterdir():
        (seg / "segment.json").write_text("{garbage")
    search = rag(rag_home, "search", "fungus gnats", "--no-rerank")
    assert search.returncode == 1 and "damaged" in one_line_error(search)
    check = rag(rag_home, "doctor")
    assert check.returncode == 1 and "Traceback" not in check.stderr
    assert f"re-ingest them with `rag ingest {docs} --collection default`" in check.stdout.replace("\n", "")
    again = Ingestor(settings, rag_home, embedder=embedder).run([docs])
    assert again.files_added + again.files_updated == 3 and again.chunks_total > 3
    assert [f.state for f in doctor(settings, rag_home)] == ["ok", "ok", "ok"]


# -- 6. a folder that becomes unreadable -----------------------------------------------------------

@pytest.mark.slow
def test_6_unreadable_folder_keeps_its_files(tmp_path: Path, docs: Path) -> None:
    home = tmp_path / "home"
    os.chmod(docs / "sub", 0o000)
    probe = subprocess.run([sys.executable, "-c", f"import os; os.listdir({str(docs / 'sub')!r})"],
                           preexec_fn=drop_file_capabilities if os.geteuid() == 0 else None, capture_output=True)
    os.chmod(docs / "sub", 0o755)
    if probe.returncode == 0:
        pytest.skip("cannot make a folder unreadable to a child process here (capabilities could not be dropped)")
    first = rag(home, "ingest", str(docs), "--json", unprivileged=True)
    assert first.returncode == 0, first.stderr
    os.chmod(docs / "sub", 0o000)
    try:
        second = rag(home, "ingest", str(docs), "--json", unprivileged=True)
        assert second.returncode == 3, second.stderr  # reported as a failure, the rest went in
        report = json.loads(second.stdout)
        assert report["files_deleted"] == 0 and report["chunks_removed"] == 0 and report["files_unchanged"] == 2
        assert report["files_failed"] == [{"path": str(docs / "sub"),
                                           "reason": "cannot read folder: Permission denied; its files already in the "
                                                     "index are kept"}]
        found = rag(home, "search", "fungus gnats in wet soil", "-k", "1", "--no-rerank", "--json", unprivileged=True)
        assert json.loads(found.stdout)["results"][0]["source"] == str(docs / "sub" / "pests.html")
    finally:
        os.chmod(docs / "sub", 0o755)
    third = rag(home, "ingest", str(docs), "--json", unprivileged=True)
    assert third.returncode == 0 and json.loads(third.stdout)["files_unchanged"] == 3


# -- 7. follow_symlinks with loops; deep nesting ---------------------------------------------------

def test_7_follow_symlinks_ends_on_loops_and_deep_trees(tmp_path: Path) -> None:
    root = tmp_path / "d"
    outside = tmp_path / "outside"
    write(root / "a.txt", "a")
    write(outside / "o.txt", "o")
    os.symlink(outside, root / "out")          # followed once
    os.symlink(outside, outside / "again")     # loop 1: outside -> itself
    os.symlink(root, outside / "back")         # loop 2: outside -> the root
    os.symlink(outside, root / "out2")         # a second path to the same folder
    start = time.monotonic()
    found = discover([root], follow_symlinks=True)
    assert time.monotonic() - start < 5
    assert sorted(Path(f.source).name for f in found.files) == ["a.txt", "o.txt"]
    reasons = {Path(s.source).name: s.reason for s in found.skipped}
    assert "already walked" in reasons["again"] and "already walked" in reasons["out2"]

    deep = leaf = tmp_path / "deep"
    deep.mkdir()
    for _ in range(1100):  # os.makedirs recurses once per level
        leaf = leaf / "n"
        leaf.mkdir()
    (leaf / "bottom.txt").write_text("x")
    try:
        found = discover([deep], follow_symlinks=True)
        assert [Path(f.source).name for f in found.files] == ["bottom.txt"]
    finally:  # bottom up: pytest's recursive cleanup of old temp folders would overflow the stack
        (leaf / "bottom.txt").unlink()
        while leaf != deep:
            leaf.rmdir()
            leaf = leaf.parent


# -- 8. a Qdrant server that echoes the API key ----------------------------------------------------

SECRET = "sk-live-4f9a8b7c6d5e"


class _EchoingQdrant(BaseHTTPRequestHandler):
    """Answers every request with a 500 whose body echoes the request headers (as some proxies do)."""

    def _reply(self) -> None:
        body = json.dumps({"status": {"error": f"bad request; headers were {dict(self.headers)}"}}).encode()
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _reply

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def echoing_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoingQdrant)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_8_server_error_does_not_leak_the_api_key(tmp_path: Path, docs: Path, echoing_server: str) -> None:
    env = {"RAG_STORE_BACKEND": "qdrant", "RAG_STORE_URL": echoing_server, "QDRANT_API_KEY": SECRET}
    proc = rag(tmp_path / "h", "ingest", str(docs), env=env)
    assert proc.returncode == 1
    line = one_line_error(proc)
    assert "Qdrant server at" in line and "500" in line
    everything = proc.stdout + proc.stderr
    assert SECRET not in everything and "UserWarning" not in everything and "warnings.warn" not in everything


# -- 9. one copy of the local LLM per user, not per home -------------------------------------------

def test_9_split_model_is_shared_across_homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    from rag.core.llm_models import REGISTRY, SplitModel, register, resolve_gguf

    pkgs = tmp_path / "site"
    for i, chunk in enumerate([b"shared ", b"model"], 1):
        mod = pkgs / f"rag_share_part{i}"
        (mod / "data").mkdir(parents=True)
        (mod / "data" / "p.bin").write_bytes(chunk)
        (mod / "__init__.py").write_text(
            "import os\ndef get_part_path():\n    return os.path.join(os.path.dirname(__file__), 'data', 'p.bin')\n")
    joined = b"shared model"
    register(SplitModel("share-split", ("rag-share-part1", "rag-share-part2"), len(joined),
                        hashlib.sha256(joined).hexdigest()))
    cache = tmp_path / "cache"
    monkeypatch.setenv("RAG_MODEL_CACHE", str(cache))
    sys.path.insert(0, str(pkgs))
    try:
        one = resolve_gguf("share-split", tmp_path / "home1")
        two = resolve_gguf("share-split", tmp_path / "home2")
        assert one == two == cache / "share-split.gguf" and one.read_bytes() == joined
        assert not (tmp_path / "home1").exists() and not (tmp_path / "home2").exists()
        monkeypatch.delenv("RAG_MODEL_CACHE")
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        from rag.core.llm_models import model_cache_dir

        assert model_cache_dir() == tmp_path / "xdg" / "rag" / "models"
    finally:
        sys.path.remove(str(pkgs))
        REGISTRY.pop("share-split")
        for name in ("rag_share_part1", "rag_share_part2"):
            sys.modules.pop(name, None)
    assert load_settings(tmp_path / "home1", {"RAG_MODEL_CACHE": str(cache)}) == Settings()


# -- 10. the smaller cases --------------------------------------------------------------------------

def test_10_k_is_checked_before_models_load(tmp_path: Path) -> None:
    start = time.monotonic()
    proc = rag(tmp_path / "h", "search", "water", "-k", "100000")
    assert proc.returncode == 1 and "-k must be between 1 and 1000 (got 100000)" in one_line_error(proc)
    assert time.monotonic() - start < 10  # loading the models alone took 12 s


def test_10_long_query_with_bm25(settings: Settings, rag_home: Path, embedder, docs: Path) -> None:  # type: ignore[no-untyped-def]
    Ingestor(settings, rag_home, embedder=embedder).run([docs])
    query = "fungus gnats breed in wet soil " + "and more words " * 1500  # ~10,000 characters
    for retriever in ("bm25", "sparse"):
        searcher = Searcher(settings, rag_home, retriever=retriever, rerank=False)
        try:
            assert searcher.search(query, 3).results[0].source.endswith("pests.html")
        finally:
            searcher.close()
    searcher = Searcher(settings, rag_home, retriever="dense", rerank=False)
    try:
        with pytest.raises(ConfigError, match="tokens but the embedding model reads at most"):
            searcher.search(query, 3)
    finally:
        searcher.close()


def test_10_numeric_filter_needs_a_number() -> None:
    with pytest.raises(ConfigError, match="page is a number"):
        parse_filters(["page=abc"])
    assert parse_filters(["page=3"]).fields == {"page": 3}


@pytest.mark.slow
def test_10_empty_folder_exit_code_is_the_same_everywhere(tmp_path: Path, docs: Path) -> None:
    home, empty = tmp_path / "h", tmp_path / "empty"
    empty.mkdir()
    assert rag(home, "ingest", str(empty)).returncode == 4  # new collection
    assert rag(home, "ingest", str(docs)).returncode == 0
    proc = rag(home, "ingest", str(empty))
    assert proc.returncode == 4 and "no supported files found" in proc.stderr  # existing collection


def test_10_unknown_rag_variables_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown environment variable RAG_NOSUCH_KEY"):
        load_settings(tmp_path, {"RAG_NOSUCH_KEY": "1"})
    with pytest.raises(ConfigError, match="RAG_EMBEDING_MODEL"):
        load_settings(tmp_path, {"RAG_EMBEDING_MODEL": "x"})
    fine = {"RAG_HOME": "x", "RAG_RETRIEVERS": "dense", "RAG_MODEL_CACHE": "/tmp", "RAG_API_KEY": "k",
            "RAG_NO_SERVER": "1", "RAG_CHUNKING_CHUNK_SIZE": "800"}
    assert load_settings(tmp_path, fine).chunking.chunk_size == 800
    write(tmp_path / "config.toml", '[llm]\napi_key_env = "RAG_MY_LLM_KEY"\n')
    assert load_settings(tmp_path, {"RAG_MY_LLM_KEY": "k"}).llm.api_key_env == "RAG_MY_LLM_KEY"
