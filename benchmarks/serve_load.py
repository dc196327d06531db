"""Load on `rag serve`: 1, 2, 4, 8 concurrent clients doing POST /v1/search for N seconds each.

Starts the server in this process (uvicorn on a free loopback port, over one Engine) on a
collection of a home, and measures, in the same run:

- the baseline: the engine's own search latency, called directly (no HTTP), before and after the load;
- for each number of clients (threads of a child process, each with its own connection):
  throughput (requests/s), p50 and p95 latency, errors.

Ratios printed: single-client p50 through the server / engine p50 (target <= 1.5), and p95 at
the most clients / single-client p50 (target <= 4). Queries: ``--queries`` (a text file, one per
line, or a BEIR ``queries.jsonl``), else the first words of stored chunks.

    python benchmarks/serve_load.py beir-scifact --home ~/.local/share/rag --seconds 60 \
        --queries ~/data/scifact/queries.jsonl --chat 4
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def load_queries(path: str | None, engine: Any, collection: str, n: int = 200) -> list[str]:
    """Queries from a file (lines, or BEIR queries.jsonl), else the first words of stored chunks."""
    if path:
        text = Path(path).read_text(encoding="utf-8")
        if path.endswith(".jsonl"):
            return [json.loads(line)["text"] for line in text.splitlines() if line.strip()][:n]
        return [line.strip() for line in text.splitlines() if line.strip()][:n]
    store = engine.searcher(collection).ctx.store
    out = []
    for _, payload in store.scroll(with_payload=True):
        words = str(payload.get("text", "")).split()[:8]
        if len(words) >= 3:
            out.append(" ".join(words))
        if len(out) >= n:
            break
    return out


def engine_latencies(engine: Any, collection: str, queries: list[str], k: int, seconds: float,
                     rerank: bool | None = None) -> list[float]:
    """The engine's own search latency (ms), one query after another, no HTTP.

    Measured on a worker thread, as the server's requests run: on a busy machine torch ran the same
    search several times slower on the main thread (its OpenMP team) than on a worker thread.
    """
    out: list[float] = []

    def measure() -> None:
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end or len(out) < 3:
            t0 = time.perf_counter()
            engine.search(queries[i % len(queries)], collection, k, rerank=rerank)
            out.append((time.perf_counter() - t0) * 1000)
            i += 1

    worker = threading.Thread(target=measure, name="engine-baseline")
    worker.start()
    worker.join()
    return out


def run_load(url: str, collection: str, queries: list[str], clients: int, seconds: float, k: int,
             headers: dict[str, str] | None = None, rerank: bool | None = None) -> dict[str, Any]:
    """``clients`` threads, each with its own connection, searching for ``seconds``; latency in ms."""
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client(n: int) -> None:
        with httpx.Client(base_url=url, timeout=120, headers=headers or {}) as http:
            start.wait()
            i = n * 7919
            while time.monotonic() < stop_at[0]:
                t0 = time.perf_counter()
                try:
                    reply = http.post("/v1/search", json={"query": queries[i % len(queries)], "collection": collection,
                                                          "k": k, "rerank": rerank})
                    ok = reply.status_code == 200
                    why = "" if ok else f"HTTP {reply.status_code}: {reply.text[:120]}"
                except httpx.HTTPError as exc:
                    ok, why = False, f"{type(exc).__name__}: {exc}"
                ms = (time.perf_counter() - t0) * 1000
                with lock:
                    (latencies.append(ms) if ok else errors.append(why))
                i += 1

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.monotonic() + seconds
    t_start = time.monotonic()
    start.wait()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t_start
    return {"clients": clients, "requests": len(latencies), "errors": len(errors), "seconds": round(elapsed, 2),
            "throughput_rps": round(len(latencies) / elapsed, 2), "p50_ms": round(percentile(latencies, 50), 2),
            "p95_ms": round(percentile(latencies, 95), 2), "first_error": errors[0] if errors else None}


def run_load_elsewhere(url: str, collection: str, queries: list[str], clients: int, seconds: float, k: int,
                       rerank: bool | None) -> dict[str, Any]:
    """:func:`run_load` in a child process, so the clients do not share the server's GIL."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(run_load, (url, collection, queries, clients, seconds, k, None, rerank))


def measured_step(url: str, collection: str, queries: list[str], clients: int, seconds: float, k: int,
                  rerank: bool | None) -> dict[str, Any]:
    """One load step, with the CPU the server (this process) used during it, in cores, and the load average.

    On a machine of N cores, a server near N busy cores is saturated: more clients only lengthen the queue.
    """
    before, t0 = os.times(), time.monotonic()
    row = run_load_elsewhere(url, collection, queries, clients, seconds, k, rerank)
    after, wall = os.times(), time.monotonic() - t0
    row["server_cpu_cores"] = round((after.user - before.user + after.system - before.system) / wall, 2)
    row["load_average_1m"] = round(os.getloadavg()[0], 2)
    return row


def cpu_bound_ratio(single: dict[str, Any], clients: int, cores: int | None = None) -> float | None:
    """The lowest p50 at ``clients`` clients / p50 at 1 client that the CPU allows, with no batching gains.

    At one client the server served ``throughput_rps`` using ``server_cpu_cores``; all ``cores`` busy,
    it can serve at most throughput x cores / server_cpu_cores, so ``clients`` clients each wait at
    least clients / that for a reply (Little's law). A ratio above this bound is queueing the server
    could avoid; one near it is the machine's limit.
    """
    cores = cores or os.cpu_count() or 1
    used = single.get("server_cpu_cores") or 0
    if not used or not single["throughput_rps"] or not single["p50_ms"]:
        return None
    best_rps = single["throughput_rps"] * cores / used
    return round(clients / best_rps * 1000 / single["p50_ms"], 2)


def _unmarked(text: str) -> str:
    import re

    return re.sub(r"\s*\[\d+\]", "", text).strip()


def run_chats(url: str, collection: str, questions: list[str]) -> dict[str, Any]:
    """One streaming chat per question, all at once; each must end with its own citations and its own text."""
    import httpx

    results: list[dict[str, Any]] = []
    lock = threading.Lock()

    def one(question: str) -> None:
        t0 = time.perf_counter()
        text, extra, error = "", None, None
        body = {"model": f"rag:{collection}", "stream": True, "messages": [{"role": "user", "content": question}]}
        try:
            with httpx.Client(base_url=url, timeout=600) as http, http.stream("POST", "/v1/chat/completions",
                                                                              json=body) as reply:
                for line in reply.iter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    data = json.loads(line[6:])
                    if "error" in data:
                        error = data["error"]["message"]
                    for choice in data.get("choices") or []:
                        text += (choice.get("delta") or {}).get("content") or ""
                    extra = data.get("rag", extra)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        complete = extra is not None and error is None
        own = complete and extra["question"] == question and (
            extra["withdrawn"] or _unmarked(text) == _unmarked(extra["answer"]))
        with lock:
            results.append({"seconds": time.perf_counter() - t0, "complete": complete, "own": own, "error": error})

    threads = [threading.Thread(target=one, args=(q,)) for q in questions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    times = [r["seconds"] for r in results]
    return {"chat_clients": len(questions), "complete": sum(r["complete"] for r in results),
            "not_mixed": sum(r["own"] for r in results), "errors": [r["error"] for r in results if r["error"]],
            "p50_s": round(percentile(times, 50), 2), "max_s": round(max(times), 2)}


def run_chats_elsewhere(url: str, collection: str, questions: list[str]) -> dict[str, Any]:
    """:func:`run_chats` in a child process."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(run_chats, (url, collection, questions))


def start_server(engine: Any) -> tuple[Any, threading.Thread, str]:
    """uvicorn over the engine on a free loopback port, in a thread."""
    import uvicorn

    from rag.serve.app import create_app

    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as `rag serve` does (else ~40 ms a reply)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(engine, close_engine=False), log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("collection", help="collection of the home to search")
    parser.add_argument("--home", default=None, help="home folder (default: $RAG_HOME, else ~/.local/share/rag)")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds per number of clients (default 60)")
    parser.add_argument("--clients", default="1,2,4,8", help="comma-separated client counts (default 1,2,4,8)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--queries", default=None, help="text file (one query a line) or BEIR queries.jsonl")
    parser.add_argument("--baseline-seconds", type=float, default=None,
                        help="seconds of direct engine searches before and after the load (default: seconds/4)")
    parser.add_argument("--no-rerank", action="store_true", help="skip the cross-encoder (fused order)")
    parser.add_argument("--chat", type=int, default=0,
                        help="after the searches, N concurrent streaming chats (each must complete, none mixed)")
    parser.add_argument("--llm-model", default=None, help="[llm] local_model for --chat, e.g. smollm2-135m-instruct")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from rag.core.config import load_settings, resolve_home
    from rag.serve.engine import Engine

    home = resolve_home(args.home)
    settings = load_settings(home)
    if args.llm_model:
        settings = settings.model_copy(update={"llm": settings.llm.model_copy(update={"local_model": args.llm_model})})
    engine = Engine(settings, home)
    counts = [int(c) for c in args.clients.split(",") if c.strip()]
    rerank = False if args.no_rerank else None
    base_s = args.baseline_seconds if args.baseline_seconds is not None else max(args.seconds / 4, 2.0)
    try:
        queries = load_queries(args.queries, engine, args.collection)
        if not queries:
            print(f"no queries: collection '{args.collection}' is empty and --queries was not given", file=sys.stderr)
            return 1
        engine_latencies(engine, args.collection, queries, args.k, 1.0, rerank)  # warm the models
        before = engine_latencies(engine, args.collection, queries, args.k, base_s / 2, rerank)
        server, thread, url = start_server(engine)
        try:
            rows = [measured_step(url, args.collection, queries, c, args.seconds, args.k, rerank) for c in counts]
            chats = run_chats_elsewhere(url, args.collection, queries[:args.chat]) if args.chat else None
        finally:
            server.should_exit = True
            thread.join(30)
        after = engine_latencies(engine, args.collection, queries, args.k, base_s / 2, rerank)
    finally:
        engine.close()
    baseline = before + after
    engine_p50 = percentile(baseline, 50)
    single = next((r for r in rows if r["clients"] == 1), rows[0])
    most = max(rows, key=lambda r: r["clients"])
    result = {
        "collection": args.collection, "queries": len(queries), "k": args.k, "reranked": not args.no_rerank,
        "seconds_per_step": args.seconds,
        "cpu_count": os.cpu_count(), "engine_search_p50_ms": round(engine_p50, 2),
        "engine_search_p95_ms": round(percentile(baseline, 95), 2), "engine_searches": len(baseline),
        "steps": rows,
        "ratio_server_p50_1_client_over_engine_p50": round(single["p50_ms"] / engine_p50, 2) if engine_p50 else None,
        f"ratio_p95_{most['clients']}_clients_over_p50_1_client":
            round(most["p95_ms"] / single["p50_ms"], 2) if single["p50_ms"] else None,
        "errors": sum(r["errors"] for r in rows),
        "cpu_bound_p50_ratio": cpu_bound_ratio(single, most["clients"]),
        "model_thread_calls": engine.worker.calls, "model_thread_items": engine.worker.items,
        "chat": chats,
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"collection {args.collection}: {len(queries)} queries, k={args.k}"
          f"{', no rerank' if args.no_rerank else ''}, {args.seconds:g} s per step, "
          f"{os.cpu_count()} CPUs")
    print(f"engine alone (no HTTP): p50 {engine_p50:.1f} ms, p95 {result['engine_search_p95_ms']:.1f} ms "
          f"over {len(baseline)} searches")
    print(f"{'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'errors':>6} {'server CPU cores':>16} {'load avg':>8}")
    for r in rows:
        print(f"{r['clients']:>7} {r['throughput_rps']:>8.2f} {r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} {r['errors']:>6} "
              f"{r['server_cpu_cores']:>16.2f} {r['load_average_1m']:>8.2f}")
    if engine.worker.calls:
        print(f"model thread: {engine.worker.items} model calls asked, run as {engine.worker.calls} batched calls "
              f"({engine.worker.items / engine.worker.calls:.2f} per call)")
    print(f"server p50 at 1 client / engine p50: {result['ratio_server_p50_1_client_over_engine_p50']} (target <= 1.5)")
    key = f"ratio_p95_{most['clients']}_clients_over_p50_1_client"
    print(f"p95 at {most['clients']} clients / p50 at 1 client: {result[key]} (target <= 4)")
    if result["cpu_bound_p50_ratio"] is not None:
        print(f"the CPU's bound: with all {os.cpu_count()} cores busy, p50 at {most['clients']} clients / p50 at 1 client "
              f">= {result['cpu_bound_p50_ratio']} without batching gains")
    if chats:
        print(f"{chats['chat_clients']} concurrent chats: {chats['complete']} complete, {chats['not_mixed']} with their "
              f"own answer and citations, p50 {chats['p50_s']} s, slowest {chats['max_s']} s, errors {chats['errors']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
