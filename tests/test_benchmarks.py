"""Benchmark scripts start as the README runs them (``python benchmarks/X.py``), and their summaries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SIBLING_IMPORTERS = sorted(p for p in (REPO / "benchmarks").glob("*.py") if "from benchmarks." in p.read_text())


@pytest.mark.parametrize("script", SIBLING_IMPORTERS, ids=lambda p: p.name)
def test_a_script_importing_a_sibling_starts_from_another_folder(script: Path, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(script), "--help"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage" in proc.stdout.lower()


def _line(answerable: bool, refused: bool, p: float | None) -> dict:
    return {"answerable": answerable, "refused": refused, "answer_checks": {"verified_probability": p}}


def test_verify_sweep_counts_draft_refusals_and_rereads_withdrawn_drafts() -> None:
    sys.path.insert(0, str(REPO))
    from benchmarks.answer_summary import verify_sweep

    lines = [
        _line(False, True, None),   # the draft refused
        _line(False, False, 0.3),
        _line(False, False, 0.8),
        _line(False, True, 0.5),    # answered, then withdrawn by verify: the sweep re-reads its P(yes)
        _line(True, False, 0.9),
        _line(True, False, 0.7),
        _line(True, True, None),
        {"answerable": True, "refused": False},  # an engine error: no draft, left out
    ]
    out = verify_sweep(lines)
    assert out is not None and out["questions"] == 7
    assert out["auroc_answered"] == pytest.approx(5 / 6, abs=1e-4)
    sweep = out["refused [unanswerable, answerable] by threshold"]
    assert sweep["0.0"] == [0.25, pytest.approx(1 / 3, abs=1e-4)]
    assert sweep["0.65"] == [0.75, pytest.approx(1 / 3, abs=1e-4)]
    assert sweep["0.95"] == [1.0, 1.0]
    assert verify_sweep([_line(True, False, 0.9)]) is None  # one kind only
