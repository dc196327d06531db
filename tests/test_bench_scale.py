"""`rag bench scale`: a synthetic collection through the real store code, measured (tiny sizes here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from click.testing import CliRunner

from rag.cli.bench_scale import _exact_top, bench_scale, synthetic_vectors
from rag.core.config import Settings
from tests.conftest import write


def test_scale_rows_report_every_figure_and_exact_search_finds_the_true_neighbours(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    for i in range(8):
        write(corpus / f"note{i}.md", f"# Note {i}\n\n" + " ".join(f"The pump {i} moves water {j} metres." for j in range(30)))
    result = bench_scale([400], corpus, Settings.model_validate({"chunking": {"chunk_size": 300}}), queries=10,
                         efs=[16, 64])
    (row,) = result["sizes"]
    assert row["chunks"] == 400 and row["write_points_per_s"] > 0 and row["build_peak_rss_mb"] > 0
    assert 0 < row["search_peak_rss_mb"] <= row["peak_rss_mb"]  # the search ran in a process of its own
    assert [r["hnsw_ef"] for r in row["by_hnsw_ef"]] == [16, 64] and row["hnsw_ef"] == 16  # the first is the row's
    assert row["open_close_seconds"] > 0 and row["open_seconds"] > 0
    assert row["recall_at_10_vs_exact"] == 1.0  # a collection this small is searched exactly
    assert 0 < row["dense_p50_ms"] <= row["dense_p95_ms"] and row["hybrid_p50_ms"] > 0
    assert row["reingest_chunks_embedded"] > 0 and row["reingest_one_file_seconds"] > 0
    assert row["reingest_resident_chunks_embedded"] > 0 and row["reingest_resident_seconds"] > 0  # the rag serve path


def test_synthetic_vectors_are_unit_length_reproducible_and_the_exact_search_is_exact(tmp_path: Path) -> None:
    a = synthetic_vectors(50, 16, 4, seed=3, start=100)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(a, synthetic_vectors(50, 16, 4, seed=3, start=100))
    path = tmp_path / "v.f32"
    path.write_bytes(a.tobytes())
    q = a[:3]
    top = _exact_top(path, 50, 16, q, 5)
    assert [row[0] for row in top] == [0, 1, 2]  # each query's nearest row is itself
    assert top[0] == list(np.argsort(-(a @ q[0]))[:5])


def test_bad_sizes_are_one_line(tmp_path: Path) -> None:
    from rag.cli.main import main

    write(tmp_path / "c" / "a.txt", "text")
    out = CliRunner().invoke(main, ["--home", str(tmp_path / "h"), "bench", "scale", "--corpus", str(tmp_path / "c"),
                                    "--sizes", "10,abc"])
    assert out.exit_code != 0 and "--sizes takes comma-separated numbers" in out.output
