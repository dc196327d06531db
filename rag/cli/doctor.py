"""``rag doctor``: check every collection of the home and repair what can be rebuilt."""

from __future__ import annotations

import json
import sys

import click

from rag.cli.context import EXIT_ERROR, Context, handle_errors
from rag.cli.text import plain


@click.command()
@click.option("--collection", "-c", "collections", multiple=True, help="Only this collection (repeatable).")
@click.option("--check", "check_only", is_flag=True, help="Report only; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
@handle_errors
def doctor(obj: Context, collections: tuple[str, ...], check_only: bool, as_json: bool) -> None:
    """Check the home's collections and repair what can be rebuilt from the store.

    A damaged or outdated BM25 index is rebuilt from the store; a damaged
    manifest is moved aside and rebuilt from the store's payloads; a damaged
    store is named with the folder to re-ingest (and moved aside, so the next
    `rag ingest` rebuilds it). Each collection is locked while it is checked.

    \b
    Exit status: 0 everything is sound or was repaired; 1 something needs you
    (a collection to re-ingest).

    \b
    Example:
      rag doctor
      rag doctor --check --collection notes --json
    """
    from ingest.doctor import BROKEN, doctor as run_doctor

    findings = run_doctor(obj.settings, obj.home, list(collections) or None, repair=not check_only)
    if as_json:
        click.echo(json.dumps({"home": str(obj.home), "findings": [f.as_dict() for f in findings]}, ensure_ascii=False))
    else:
        click.echo(f"home: {plain(obj.home)}")
        if not findings:
            click.echo("no collections yet; run `rag ingest PATH`")
        for f in findings:
            click.echo(plain(f"{f.collection}: {f.part}: {f.state}: {f.message}"))
    if any(f.state == BROKEN for f in findings):
        sys.exit(EXIT_ERROR)
