"""Async executions ("wait": false): N clients x M through the in-process pool and through Celery + Redis."""

from __future__ import annotations

import json
import socket
import sqlite3
import statistics
import threading
import time
import uuid
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import urllib3

from bench import flows
from bench.core import PYTHON, Row, Scale, Section, Spread, child_env, percentile, ratios, wait_for
from bench.stack import Database, Process, Server, prepare_database, spawn, start_server

REDIS = ("127.0.0.1", 6379)
BROKER_URL = "redis://127.0.0.1:6379/12"
POOL_THREADS_PER_WORKER = 2
FINISHED = ("succeeded", "failed", "cancelled")


def _redis_up() -> bool:
    try:
        socket.create_connection(REDIS, timeout=1).close()
    except OSError:
        return False
    return True


def _start_celery(database: Database, env: dict[str, str], concurrency: int, *, log_dir: Path) -> Process:
    command = [PYTHON, "-m", "celery", "-A", "flowexec", "worker", "--loglevel=INFO", f"--concurrency={concurrency}",
               "--pool=prefork", "-n", f"bench-{uuid.uuid4().hex[:6]}@%h", "--without-gossip", "--without-mingle",
               "--without-heartbeat", "-Q", env["FLOWEXEC_CELERY_QUEUE"]]
    worker = spawn("celery-worker", command, env=child_env(DATABASE_URL=database.url, **env), log_dir=log_dir)
    wait_for(lambda: worker.alive() and " ready." in worker.log(), timeout=90, what="the celery worker")
    return worker


def _drop_queue(queue: str) -> None:
    """Delete the bench's queue and the binding keys kombu's Redis transport keeps apart from it."""
    import kombu
    import redis

    with kombu.Connection(BROKER_URL) as conn:
        conn.default_channel.queue_delete(queue)
    client = redis.Redis.from_url(BROKER_URL)
    # The exchange is named after the queue: `_kombu.binding.<queue>`, `_kombu.binding_permanent.<queue>`.
    stale = [key for key in client.scan_iter("_kombu.binding*") if key.decode().endswith(f".{queue}")]
    if stale:
        client.delete(*stale)


def _rows(database: Database, ids: list[str]) -> list[tuple[str, str, str | None, str | None]]:
    keys = [uuid.UUID(i).hex for i in ids]
    with sqlite3.connect(f"file:{database.path}?mode=ro", uri=True, timeout=30) as conn:
        rows = []
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            rows += conn.execute(
                "SELECT status, created_at, started_at, finished_at FROM executions_execution "
                f"WHERE id IN ({','.join('?' * len(chunk))})", chunk).fetchall()
    return rows


def _finished(database: Database, ids: list[str]) -> set[str]:
    """Those of `ids` whose execution has finished."""
    by_key = {uuid.UUID(i).hex: i for i in ids}
    keys = list(by_key)
    done: set[str] = set()
    with sqlite3.connect(f"file:{database.path}?mode=ro", uri=True, timeout=30) as conn:
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            done.update(by_key[key] for (key,) in conn.execute(
                f"SELECT id FROM executions_execution WHERE status IN ({','.join('?' * len(FINISHED))}) "
                f"AND id IN ({','.join('?' * len(chunk))})", [*FINISHED, *chunk]))
    return done


def _burst(server: Server, scale: Scale) -> dict[str, object]:
    """Every client posts its executions one after another; time until the last one finished."""
    ids: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()
    body = json.dumps({"flow": flows.TWO, "inputs": flows.INPUTS, "wait": False}).encode()

    def client() -> None:
        http = urllib3.PoolManager(maxsize=1, retries=False)
        for _ in range(scale.async_per_client):
            response = http.request("POST", server.url + "/api/executions/", body=body, headers=server.headers,
                                    timeout=60)
            with lock:
                if response.status in (201, 202):
                    ids.append(json.loads(response.data)["id"])
                else:
                    errors.append(f"{response.status} {response.data[:200]!r}")

    threads = [threading.Thread(target=client) for _ in range(scale.async_clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    if errors:
        raise RuntimeError(f"{server.name}: {len(errors)} submissions refused, first: {errors[0]}")
    submitted = time.monotonic()

    unfinished = set(ids)

    def all_finished() -> bool:
        # Only the rows not seen finished yet: a poll costs the machine the least where the queue drains longest.
        unfinished.difference_update(_finished(server.database, list(unfinished)))
        return not unfinished

    wait_for(all_finished, timeout=600, interval=0.02, what=f"{len(ids)} executions on {server.name}")
    elapsed = time.monotonic() - started
    rows = _rows(server.database, ids)
    waits = [(datetime.fromisoformat(s) - datetime.fromisoformat(c)).total_seconds() * 1000
             for _, c, s, _ in rows if s and c]
    return {"per_second": len(ids) / elapsed, "submit_seconds": submitted - started, "waits_ms": waits,
            "not_succeeded": sum(1 for row in rows if row[0] != "succeeded")}


def run(scale: Scale, workdir: Path) -> Section:
    section = Section("async", f"Async: {scale.async_clients} clients x {scale.async_per_client} executions "
                               "(\"wait\": false), in-process pool vs Celery + Redis")
    logs = workdir / "logs"
    database = prepare_database(workdir / "template.sqlite3")
    base = {"OTEL_SDK_DISABLED": "true", "FLOWEXEC_ASYNC_WORKERS": str(POOL_THREADS_PER_WORKER)}
    servers: dict[str, Server] = {}
    worker: Process | None = None
    queue = f"flowexec-bench-{uuid.uuid4().hex[:8]}"
    try:
        servers["pool"] = start_server("pool", database.copy(workdir / "pool.sqlite3"), log_dir=logs, env=base)
        concurrency = POOL_THREADS_PER_WORKER * max(1, servers["pool"].workers())
        if _redis_up():
            celery_env = {**base, "FLOWEXEC_BROKER_URL": BROKER_URL, "FLOWEXEC_CELERY_QUEUE": queue}
            servers["celery"] = start_server("celery", database.copy(workdir / "celery.sqlite3"), log_dir=logs,
                                             env=celery_env)
            worker = _start_celery(servers["celery"].database, celery_env, concurrency, log_dir=logs)
        else:
            section.notes.append(f"Redis is not listening on {REDIS[0]}:{REDIS[1]}: the Celery side was skipped")
        for server in servers.values():
            # Untimed: every pool thread and worker process has run once.
            _burst(server, replace(scale, async_clients=concurrency, async_per_client=2))
        results: dict[str, list[dict]] = {name: [] for name in servers}
        for round_number in range(scale.rounds):
            names = list(servers)[round_number % len(servers):] + list(servers)[: round_number % len(servers)]
            for name in names:
                results[name].append(_burst(servers[name], scale))
            print(f"  round {round_number + 1}: " + ", ".join(
                f"{name} {results[name][-1]['per_second']:.1f}/s" for name in servers), flush=True)
    finally:
        if worker:
            worker.stop()
        for server in servers.values():
            server.stop()
        if worker:
            _drop_queue(queue)

    labels = {"pool": "in-process pool", "celery": "Celery + Redis (prefork)"}
    for name, rounds in results.items():
        waits = [w for result in rounds for w in result["waits_ms"]]
        failed = sum(result["not_succeeded"] for result in rounds)
        section.rows += [
            Row(f"executions/s, {labels[name]}", f"{failed} not succeeded",
                Spread.of(r["per_second"] for r in rounds), "", 1),
            Row(f"queue wait (started_at - created_at), {labels[name]}, p50 ms",
                f"p99 {percentile(waits, 0.99):.0f} ms, max {max(waits):.0f} ms",
                Spread.of(statistics.median(r["waits_ms"]) for r in rounds), "", 1),
        ]
    if "celery" in results:
        section.rows.append(Row("Celery / pool executions/s", "same concurrency",
                                ratios([r["per_second"] for r in results["celery"]],
                                       [r["per_second"] for r in results["pool"]]), ">= 0.7"))
    section.raw = {name: [{k: v for k, v in r.items() if k != "waits_ms"} for r in rounds]
                   for name, rounds in results.items()}
    section.notes += [
        f"same concurrency on both sides: {concurrency} = gunicorn workers x FLOWEXEC_ASYNC_WORKERS="
        f"{POOL_THREADS_PER_WORKER} pool threads, and one `celery worker --concurrency={concurrency}`",
        "untraced (OTEL_SDK_DISABLED) so the figure is the queue, not the exporter; SQLite shared by service and "
        "worker; executions/s counts from the first submission to the last execution finished; each round "
        f"{scale.async_clients * scale.async_per_client} executions, {scale.rounds} rounds alternating",
    ]
    return section
