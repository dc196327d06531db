"""Evaluation reports: Markdown (or HTML for a ``.html`` name) with charts as PNG files beside it.

A report has the means with 95% bootstrap intervals, the charts (mean recall@k for k = 1..
depth; a histogram per metric), a per-question table, and the worst questions with their
retrieved passages, so a reader can see *why* a number is low. Charts are drawn with
matplotlib's Agg backend (no display needed) into ``<report stem>-*.png``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.metrics import recall_at_k
from evals.run import EvalSummary

__all__ = ["write_report", "recall_curve"]

WORST = 5
PASSAGE_CHARS = 300
_HEADLINE = ("faithfulness", "citation_recall", "citation_precision", "correctness", "short_f1", "contains", "short_em",
             "f1", "em", "relevance", "refusal_accuracy")


@dataclass(frozen=True, slots=True)
class _Block:
    kind: str  # "h2", "h3", "p", "table", "image", "quote"
    content: Any


def recall_curve(results: Sequence[dict[str, Any]]) -> list[tuple[int, float]]:
    """(k, mean recall@k) for k = 1..deepest ranking, over questions with gold sources and a ranking."""
    rows = [(r["gold_sources"], r["retrieved"]) for r in results if r.get("gold_sources") and r.get("retrieved") is not None]
    if not rows:
        return []
    depth = max((len(ranked) for _, ranked in rows), default=0)
    curve = []
    for k in range(1, depth + 1):
        curve.append((k, sum(recall_at_k(dict.fromkeys(gold, 1), ranked, k) for gold, ranked in rows) / len(rows)))
    return curve


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _short(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _charts(results: Sequence[dict[str, Any]], summary: EvalSummary, report: Path) -> list[tuple[str, Path]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made: list[tuple[str, Path]] = []
    curve = recall_curve(results)
    if curve:
        path = report.with_name(f"{report.stem}-recall.png")
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot([k for k, _ in curve], [v for _, v in curve], marker="o", markersize=3)
        ax.set_xlabel("k (documents retrieved)")
        ax.set_ylabel("mean recall@k")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.set_title("Recall@k")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(("Recall@k curve", path))
    names = [m for m in summary.metrics if m.startswith(("ndcg@", "mrr")) or m in _HEADLINE or m.startswith("ragas_")]
    ndcgs = [m for m in names if m.startswith("ndcg@")]
    names = [m for m in names if not m.startswith("ndcg@")] + ndcgs[-1:]
    if names:
        path = report.with_name(f"{report.stem}-scores.png")
        cols = min(3, len(names))
        rows = math.ceil(len(names) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
        for ax, name in zip(axes.flat, names):
            values = [v for v in (summary.per_question[q].get(name) for q in summary.per_question) if v is not None]
            ax.hist(values, bins=10, range=(0.0, 1.0), color="#4c72b0", edgecolor="white")
            ax.set_title(f"{name} (n={len(values)})", fontsize=9)
            ax.tick_params(labelsize=7)
        for ax in list(axes.flat)[len(names):]:
            ax.axis("off")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(("Per-question score histograms", path))
    return made


def _question_columns(summary: EvalSummary) -> list[str]:
    present = list(summary.metrics)
    cols = [m for m in present if m.startswith("ndcg@")][-1:] + [m for m in present if m.startswith("recall@")][-1:]
    cols += [m for m in _HEADLINE if m in present and m not in ("refusal_accuracy",)][:5]
    if "refusal_accuracy" in present:
        cols.append("refusal_accuracy")
    return cols


def _worst(results: Sequence[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    scored = [r for r in results if r.get("metrics", {}).get(metric) is not None and r["metrics"][metric] < 1.0]
    return sorted(scored, key=lambda r: (r["metrics"][metric], r["id"]))[:WORST]


def _case(r: dict[str, Any], metric: str) -> list[_Block]:
    blocks = [_Block("h3", f"{r['id']}: {metric} = {_fmt(r['metrics'][metric])}"),
              _Block("p", f"**Question:** {_short(r['question'], 400)}")]
    if r.get("answers"):
        blocks.append(_Block("p", "**Reference:** " + " | ".join(_short(a, 300) for a in r["answers"][:3])))
    if r.get("answer") is not None:
        blocks.append(_Block("p", f"**Answer:** {_short(r['answer'], 600)}"))
    gold = set(r.get("gold_sources") or [])
    if gold:
        blocks.append(_Block("p", "**Gold sources:** " + ", ".join(sorted(gold))))
    if r.get("retrieved") is not None:
        ranked = r["retrieved"][:10]
        blocks.append(_Block("p", "**Retrieved (top 10):** " + ", ".join(
            (f"**{d}**" if d in gold else d) for d in ranked) if ranked else "**Retrieved:** nothing"))
    sources = r.get("context_sources") or []
    rows = []
    for n, text in enumerate(r.get("contexts") or [], 1):
        src = sources[n - 1] if n - 1 < len(sources) else ""
        rows.append([str(n), src + (" (gold)" if src in gold else ""), _short(text, PASSAGE_CHARS)])
    if rows:
        blocks.append(_Block("table", (["#", "source", "passage"], rows)))
    others = ", ".join(f"{k} {_fmt(v)}" for k, v in r["metrics"].items() if k != metric and v is not None)
    if others:
        blocks.append(_Block("p", f"Other metrics: {others}"))
    for e in r.get("errors") or []:
        blocks.append(_Block("quote", f"{e['metric']}: {e['error']}"))
    return blocks


def _blocks(results: Sequence[dict[str, Any]], summary: EvalSummary, charts: list[tuple[str, Path]]) -> list[_Block]:
    judges = "; ".join(f"{j['model']} at {j['endpoint']} ({j['method']})" for j in summary.judges) or "none"
    out = [
        _Block("p", f"Suite `{summary.suite}`, collection `{summary.collection or '(answers given)'}`: "
                    f"{summary.questions} questions ({summary.cached} from the cache), "
                    f"{summary.errors} judge/engine errors. Judge: {judges}."),
        _Block("h2", "Metrics"),
        _Block("table", (["metric", "n", "mean", "95% CI"],
                         [[k, str(m.n), f"{m.mean:.4f}", f"[{m.low:.4f}, {m.high:.4f}]"]
                          for k, m in summary.metrics.items()])),
    ]
    if charts:
        out.append(_Block("h2", "Charts"))
        out += [_Block("image", (title, path.name)) for title, path in charts]
    retrieval = ["ndcg@10"] if "ndcg@10" in summary.metrics else [m for m in summary.metrics if m.startswith("ndcg@")]
    answer = [m for m in ("correctness", "f1", "faithfulness", "citation_recall") if m in summary.metrics]
    for metric in (retrieval[-1:] + answer[:1]):
        worst = _worst(results, metric)
        out.append(_Block("h2", f"Worst questions by {metric}"))
        if not worst:
            out.append(_Block("p", f"Every question scored has {metric} = 1."))
        for r in worst:
            out += _case(r, metric)
    cols = _question_columns(summary)
    out.append(_Block("h2", "Per question"))
    rows = [[r["id"], _short(r["question"], 70), *(_fmt(r.get("metrics", {}).get(c)) for c in cols),
             str(len(r.get("errors") or []))] for r in results]
    out.append(_Block("table", (["id", "question", *cols, "errors"], rows)))
    return out


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown(title: str, blocks: list[_Block]) -> str:
    lines = [f"# {title}", ""]
    for b in blocks:
        if b.kind in ("h2", "h3"):
            lines += [f"{'#' * int(b.kind[1])} {b.content}", ""]
        elif b.kind == "p":
            lines += [b.content, ""]
        elif b.kind == "quote":
            lines += [f"> {b.content}", ""]
        elif b.kind == "image":
            lines += [f"![{b.content[0]}]({b.content[1]})", ""]
        elif b.kind == "table":
            head, rows = b.content
            lines.append("| " + " | ".join(_md_cell(h) for h in head) + " |")
            lines.append("|" + "|".join("---" for _ in head) + "|")
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            lines.append("")
    return "\n".join(lines)


def _inline_html(text: str) -> str:
    """Escape, then turn the few Markdown marks the blocks use (**bold**, `code`) into tags."""
    import re

    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def _html(title: str, blocks: list[_Block]) -> str:
    parts = ["<!doctype html>", "<html><head><meta charset='utf-8'>", f"<title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 6px;"
             "font-size:13px;vertical-align:top}blockquote{color:#a33}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    for b in blocks:
        if b.kind in ("h2", "h3"):
            parts.append(f"<{b.kind}>{_inline_html(b.content)}</{b.kind}>")
        elif b.kind == "p":
            parts.append(f"<p>{_inline_html(b.content)}</p>")
        elif b.kind == "quote":
            parts.append(f"<blockquote>{html.escape(b.content)}</blockquote>")
        elif b.kind == "image":
            parts.append(f"<figure><img src='{html.escape(b.content[1])}' alt='{html.escape(b.content[0])}'>"
                         f"<figcaption>{html.escape(b.content[0])}</figcaption></figure>")
        elif b.kind == "table":
            head, rows = b.content
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in row) + "</tr>" for row in rows]
            parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(results: Sequence[dict[str, Any]], summary: EvalSummary, path: Path) -> list[Path]:
    """Write the report (HTML if ``path`` ends in .html, else Markdown) and its charts; returns every file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    charts = _charts(results, summary, path)
    title = f"Evaluation: {Path(summary.suite).parent.name or summary.suite}"
    blocks = _blocks(results, summary, charts)
    text = _html(title, blocks) if path.suffix.lower() in (".html", ".htm") else _markdown(title, blocks)
    path.write_text(text, encoding="utf-8")
    return [path, *(p for _, p in charts)]
