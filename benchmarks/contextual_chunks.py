"""Contextual chunks, measured: retrieval with and without ``[chunking] context`` on five sets.

Each set is built twice in fresh homes under ``--work`` (never the user's home): once with
``context = []`` (the chunks as they were) and once with ``context = ["title", "headings",
"page"]``; retrieval is the default hybrid (dense + sparse) without the reranker, so the
figures isolate what is indexed. Printed as one JSON object (also written to ``--out``):

- scifact: ``rag eval beir`` on the 300 test queries (nDCG@10, recall@10/100);
- hotpotqa: the imported dev-500 suite, all 4,858 paragraphs pooled: both@5 / both@10 (both
  supporting paragraphs among the top 5 / 10 chunks);
- clapnq: the imported dev suite, 600 passages pooled: gold recall@5 (the gold passage among
  the top 5 chunks), over all 600 questions and over the 300 answerable ones;
- messy: the messy-docs folder as it is, with ``MESSY_QUESTIONS`` (written for this benchmark:
  each names a file's subject and asks about text far from its start): right file in the top 5;
- reports: a generated folder of same-template quarterly reports (``build_reports``: 6 made-up
  companies x 12 quarters, 2021-2023, named like ``2023 Q1 ACME.txt``; the cover names the
  company, and nothing in the text names the quarter: the file name identifies the report),
  one question per file naming company and quarter: right file in the top 5.

    python benchmarks/contextual_chunks.py --scifact $DATA/scifact --hotpotqa $DATA/hotpotqa-dev-500 \\
        --clapnq $DATA/clapnq-dev --messy $DATA/messy-docs --work /tmp/ctx --out ctx.json

A set whose path is not given is skipped (``reports`` needs none); ``--sets`` picks some.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from rag.core.config import Settings, load_settings

VARIANTS: dict[str, list[str]] = {"plain": [], "context": ["title", "headings", "page"]}
SETS = ("reports", "clapnq", "hotpotqa", "scifact", "messy")

# (question, accepted files relative to the messy-docs folder). Written by reading each file;
# several files hold the same document (the layout-parser paper four times).
MESSY_QUESTIONS: list[tuple[str, tuple[str, ...]]] = [
    ("Norwich City: how many goals did Iwan Roberts score for the club?", ("txt/norwich-city.txt",)),
    ("ISW Russian offensive campaign assessment of December 13: what did Wagner promise recruited prisoners?",
     ("html/example-with-scripts.html",)),
    ("Form 10-K for fiscal 2021: what was the TableMax (TMAX) complaint about?",
     ("html/example-10k.html", "html/example-10k-1p.html")),
    ("Dragon Age: siege equipment used in Thedas", ("pdf/pdf_DA-619p.pdf",)),
    ("Handbook for Chapter 13 standing trustees: rules for electronic transfers of debtor payments",
     ("docx/handbook-872p.docx",)),
    ("Universal Declaration of Human Rights, first article: the Quechua version",
     ("txt/language-docs_UDHR_first_article_all.txt",)),
    ("Dense Passage Retrieval paper: top-20 accuracy of BM25 + DPR on TriviaQA",
     ("pdf/pdf_multi-column.pdf", "pdf/pdf_multi-column-2p.pdf")),
    ("Understanding Breast Cancer guide: what does the grade of a cancer describe?",
     ("pdf/pdf_failure-after-repair.pdf",)),
    ("Résumés et interrogations de logs de requêtes OLAP: comment calculer hfmeasure ?",
     ("pdf/language-docs_fr_olap.pdf",)),
    ("GAO report on the national cybersecurity strategy: objectives to disrupt and dismantle threat actors",
     ("pdf/pdf_invalid-pdf-structure-pdfminer-one-page.pdf",)),
    ("LayoutParser toolkit: why do document images often need customized training?",
     ("pdf/pdf_layout-parser-paper-fast.pdf", "pdf/pdf_layout-parser-paper-with-empty-pages.pdf",
      "pdf/pdf_layout-parser-paper-with-table.pdf", "pdf/pdf_copy-protected.pdf", "pdf/pdf_multi-column.pdf")),
    ("USA PATRIOT Act: in which order are immigrant visas issued (priority date)?", ("html/fake-html-pre.htm",)),
    ("Reliance Industries integrated annual report 2021-22: revenue and market capitalisation",
     ("pdf/pdf_reliance.pdf",)),
    ("War and Peace: Pierre at the battle of Borodino",
     ("txt/book-war-and-peace-1225p.txt", "txt/book-war-and-peace-1p.txt")),
    ("SteelJIS datasheet SNB22-3: mechanical properties and chemical composition",
     ("html/example-steelJIS-datasheet.html", "html/example-steelJIS-datasheet-utf-16.html")),
]

COMPANIES = {
    "ACME": "Acme Corporation", "GLOBEX": "Globex Inc.", "INITECH": "Initech Holdings",
    "HOOLI": "Hooli Ltd.", "UMBRA": "Umbra Systems", "VANDELAY": "Vandelay Industries",
}
QUARTERS = ("Q1", "Q2", "Q3", "Q4")
RISKS = ["supply chain concentration", "foreign exchange volatility", "cybersecurity incidents",
         "interest rate increases", "regulatory investigations", "customer concentration"]
TOPICS = (
    ("net revenue", "What was {ticker}'s net revenue in {period}?"),
    ("liquidity", "How much cash and how much available credit did {ticker} report for {period}?"),
    ("risk", "Which risk factors did {ticker} add or change in {period}?"),
    ("outlook", "What revenue outlook did {ticker} give in its {period} report?"),
    ("headcount", "How many employees did {ticker} have at the end of {period}?"),
    ("buyback", "How many shares did {ticker} repurchase in {period}?"),
)


def build_reports(out: Path, seed: int = 7) -> list[tuple[str, tuple[str, ...]]]:
    """Write the same-template reports to ``out`` and return (question, (file,)) pairs."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    questions: list[tuple[str, tuple[str, ...]]] = []
    i = 0
    for ticker, name in COMPANIES.items():
        for year in (2021, 2022, 2023):
            for quarter in QUARTERS:
                period = f"{year} {quarter}"
                revenue = rng.randint(800, 9000)
                margin = rng.uniform(28, 61)
                text = _report(name, revenue, margin, rng)
                (out / f"{period} {ticker}.txt").write_text(text, encoding="utf-8")
                template = TOPICS[i % len(TOPICS)][1]
                questions.append((template.format(ticker=ticker, period=period), (f"{period} {ticker}.txt",)))
                i += 1
    return questions


def _report(name: str, revenue: int, margin: float, rng: random.Random) -> str:
    """One quarterly report: a cover naming the company, then sections that name neither it nor the period."""
    def money() -> str:
        return f"${rng.randint(50, 4000):,} million"

    op_income = revenue * rng.uniform(0.05, 0.3)
    return "\n\n".join([
        f"QUARTERLY REPORT\n{name}\nPrepared by Investor Relations for the Board of Directors",
        "RESULTS OF OPERATIONS\nNet revenue for the quarter was ${:,} million, {} {:.1f}% from the same quarter "
        "of the prior year. Gross margin was {:.1f}% of net revenue. Operating income was ${:,.0f} million and "
        "diluted earnings per share were ${:.2f}. Segment revenue: Products {} | Services {} | Licensing {}. "
        "Operating expenses rose with investments in research and development and in sales capacity, "
        "partly offset by lower general and administrative costs.".format(
            revenue, rng.choice(["up", "down"]), rng.uniform(0.5, 25), margin, op_income, rng.uniform(0.1, 4.5),
            money(), money(), money()),
        ("LIQUIDITY AND CAPITAL RESOURCES\nAt the end of the quarter the Company held cash, cash equivalents and "
         f"marketable securities of {money()} and had {money()} available under its revolving credit facility. "
         f"Cash provided by operating activities was {money()}; capital expenditures were {money()}. Management "
         "believes existing cash and cash from operations will be sufficient for at least the next twelve months."),
        ("SHARE REPURCHASES AND DIVIDENDS\nDuring the quarter the Company repurchased "
         f"{rng.randint(1, 40)} million shares of common stock for {money()} under its authorised program, and "
         f"paid a quarterly dividend of ${rng.uniform(0.05, 1.2):.2f} per share."),
        ("RISK FACTORS\nThere were no material changes to the risk factors previously disclosed, except that the "
         f"Company now considers {rng.choice(RISKS)} "
         "a principal risk. Demand may fluctuate with macroeconomic conditions, and competition may pressure prices."),
        ("EMPLOYEES\nAt the end of the quarter the Company had approximately "
         f"{rng.randint(900, 60000):,} full-time employees, most of them in engineering, operations and sales."),
        ("OUTLOOK\nFor the next quarter, management expects net revenue between "
         f"${int(revenue * 0.95):,} million and ${int(revenue * 1.08):,} million and a gross margin of about "
         f"{margin + rng.uniform(-2, 2):.0f}%, assuming no significant change in exchange rates."),
    ]) + "\n"


def messy_questions(folder: Path) -> list[tuple[str, tuple[str, ...]]]:
    """``MESSY_QUESTIONS`` whose files are in ``folder`` (a copy may leave the largest files out)."""
    out = []
    for question, files in MESSY_QUESTIONS:
        present = tuple(f for f in files if (folder / f).exists())
        if present:
            out.append((question, present))
        else:
            print(f"messy: none of {', '.join(files)} in {folder}; question left out", file=sys.stderr)
    return out


def variant_settings(base: Settings, context: list[str]) -> Settings:
    """``base`` with ``[chunking] context`` set."""
    chunking = base.chunking.model_copy(update={"context": list(context)})
    return base.model_copy(update={"chunking": chunking})


def _file_hits(
    settings: Settings, home: Path, collection: str, folder: Path, questions: list[tuple[str, tuple[str, ...]]],
    k: int = 5,
) -> dict[str, Any]:
    """Share of questions with one of their files among the top ``k`` chunks' sources (and the top one's)."""
    from rag.query.search import Searcher

    searcher = Searcher(settings, home, collection, "hybrid", rerank=False)
    per: list[int] = []
    first = 0
    try:
        for question, files in questions:
            wanted = {str((folder / f).resolve()) for f in files}
            ranked = [str(Path(r.source).resolve()) for r in searcher.search(question, k).results]
            per.append(int(bool(wanted & set(ranked))))
            first += bool(ranked) and ranked[0] in wanted
    finally:
        searcher.close()
    n = len(questions)
    return {f"file@{k}": round(sum(per) / n, 4), "file@1": round(first / n, 4), "questions": n, "hits": per}


def _ingest(settings: Settings, home: Path, collection: str, folder: Path) -> dict[str, Any]:
    from ingest.pipeline import Ingestor

    report = Ingestor(settings, home, collection).run([folder]).as_dict()
    return {"chunks": report["chunks_total"], "seconds": report["seconds"]}


def run_files(
    settings: Settings, home: Path, folder: Path, questions: list[tuple[str, tuple[str, ...]]],
) -> dict[str, Any]:
    """Ingest ``folder`` and score file@5 on ``questions``."""
    info = _ingest(settings, home, "set", folder)
    return {**_file_hits(settings, home, "set", folder, questions), "ingest": info}


def run_suite(settings: Settings, home: Path, suite_dir: Path, ks: tuple[int, ...]) -> dict[str, Any]:
    """Ingest an imported suite's docs/ and score gold recall (any gold) and both (all golds) at ``ks``."""
    from evals.suite import read_suite
    from rag.query.search import Searcher

    info = _ingest(settings, home, "set", suite_dir / "docs")
    items = [i for i in read_suite(suite_dir / "suite.jsonl") if i.gold_sources]
    searcher = Searcher(settings, home, "set", "hybrid", rerank=False)
    any_hit = {k: 0 for k in ks}
    all_hit = {k: 0 for k in ks}
    answerable = {k: [0, 0] for k in ks}
    try:
        for item in items:
            gold = {str((suite_dir / g).resolve()) for g in item.gold_sources or ()}
            ranked = [str(Path(r.source).resolve()) for r in searcher.search(item.question, max(ks)).results]
            for k in ks:
                found = set(ranked[:k])
                any_hit[k] += bool(gold & found)
                all_hit[k] += gold <= found
                if item.answerable is True:
                    answerable[k][0] += bool(gold & found)
                    answerable[k][1] += 1
    finally:
        searcher.close()
    n = len(items)
    out: dict[str, Any] = {"questions": n, "ingest": info}
    for k in ks:
        out[f"recall@{k}"] = round(any_hit[k] / n, 4)
        out[f"both@{k}"] = round(all_hit[k] / n, 4)
        if answerable[k][1]:
            out[f"recall@{k}_answerable"] = round(answerable[k][0] / answerable[k][1], 4)
    return out


def run_scifact(settings: Settings, home: Path, folder: Path) -> dict[str, Any]:
    """``rag eval beir`` (hybrid, no reranker) on the test split."""
    from evals.beir_run import run_beir

    report = run_beir(folder, settings, home, retriever="hybrid", rerank=False).as_dict()
    keys = ("ndcg@10", "map", "recall@10", "recall@100", "ingest")
    return {k: report[k] for k in keys}


def _import(kind: str, src: Path, work: Path) -> Path:
    from evals.importers import import_suite

    out = work / f"suite-{kind}"
    if not (out / "suite.jsonl").exists():
        import_suite(kind, src, out, overwrite=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scifact", type=Path, help="BEIR SciFact folder")
    parser.add_argument("--hotpotqa", type=Path, help="hotpotqa-dev-500 folder (dev_subsampled.jsonl)")
    parser.add_argument("--clapnq", type=Path, help="clapnq-dev folder")
    parser.add_argument("--messy", type=Path, help="messy-docs folder")
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated subset of {','.join(SETS)}")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder for the homes (e.g. /tmp/ctx)")
    parser.add_argument("--out", type=Path, help="also write the JSON here (rewritten after every set)")
    args = parser.parse_args(argv)

    wanted = [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SETS]
    if unknown:
        parser.error(f"unknown set(s) {', '.join(unknown)}; known: {', '.join(SETS)}")
    paths = {"scifact": args.scifact, "hotpotqa": args.hotpotqa, "clapnq": args.clapnq, "messy": args.messy}
    for name in wanted:
        if name != "reports" and paths[name] is None:
            print(f"{name}: no path given (--{name}); skipped", file=sys.stderr)
        elif name != "reports" and not paths[name].exists():
            parser.error(f"{paths[name]} not found: give the {name} folder of the public data sets")
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"variants": VARIANTS, "retrieval": "hybrid (dense + sparse), no reranker"}
    for name in wanted:
        if name != "reports" and paths[name] is None:
            continue
        results[name] = {}
        for variant, context in VARIANTS.items():
            home = args.work / f"home-{name}-{variant}"
            shutil.rmtree(home, ignore_errors=True)
            home.mkdir(parents=True)
            settings = variant_settings(load_settings(home, environ={}), context)
            started = time.perf_counter()
            print(f"{name} / {variant}: building and querying under {home} ...", file=sys.stderr)
            if name == "reports":
                folder = args.work / "reports"
                shutil.rmtree(folder, ignore_errors=True)
                figures = run_files(settings, home, folder, build_reports(folder))
            elif name == "messy":
                figures = run_files(settings, home, paths["messy"], messy_questions(paths["messy"]))
            elif name == "scifact":
                figures = run_scifact(settings, home, paths["scifact"])
            else:
                suite = _import(name, paths[name], args.work)
                figures = run_suite(settings, home, suite, (5, 10))
            figures["wall_seconds"] = round(time.perf_counter() - started, 1)
            results[name][variant] = figures
            shutil.rmtree(home, ignore_errors=True)
            if args.out:
                args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        plain, ctx = results[name]["plain"], results[name]["context"]
        results[name]["delta"] = {
            k: round(ctx[k] - plain[k], 4) for k in plain
            if isinstance(plain[k], (int, float)) and k not in ("questions", "wall_seconds")
        }
        print(f"{name}: {json.dumps(results[name]['delta'])}", file=sys.stderr)
        if args.out:
            args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
