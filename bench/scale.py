"""Scale: executions/s and p99 as flows grow (chain and fan-out), and page-1 reads as the table grows."""

from __future__ import annotations

import shutil
import sqlite3
import statistics
import time
from pathlib import Path

from bench import flows
from bench.core import Row, Scale, Section, Spread, ratios
from bench.stack import Database, Load, Server, get_script, post_script, prepare_database, start_server, wrk

CONNECTIONS = 4
ROW_BUDGET_SECONDS = 420
CHUNK = 100_000
TABLE = "executions_execution"


def _step_flows() -> dict[str, str]:
    names = {"2 steps": flows.TWO}
    for steps in flows.STEP_COUNTS[1:]:
        names[f"chain of {steps}"] = flows.chain_name(steps)
        names[f"fan-out to {steps - 1}"] = flows.fan_out_name(steps)
    return names


def _grow(path: Path, target: int, deadline: float) -> int:
    """Copy the one finished execution row until the table holds `target` rows (or time runs out); the count."""
    conn = sqlite3.connect(path, timeout=60)
    try:
        columns = [row[1] for row in conn.execute(f"PRAGMA table_info({TABLE})")]
        template = conn.execute(f"SELECT id FROM {TABLE} WHERE status = 'succeeded' LIMIT 1").fetchone()[0]
        count = conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]
        # New ids, and creation times one millisecond apart going back from now (the default ordering's key).
        values = {"id": "lower(hex(randomblob(16)))",
                  "created_at": "strftime('%Y-%m-%d %H:%M:%f', 'now', printf('-%.3f seconds', (n.i + ?) / 1000.0))"}
        select = ", ".join(values.get(column, f"t.{column}") for column in columns)
        insert = (f"INSERT INTO {TABLE} ({', '.join(columns)}) WITH RECURSIVE n(i) AS "
                  f"(SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
                  f"SELECT {select} FROM n, (SELECT * FROM {TABLE} WHERE id = ?) AS t")
        while count < target and time.monotonic() < deadline:
            batch = min(CHUNK, target - count)
            conn.execute(insert, (batch, count, template))
            conn.commit()
            count += batch
        # Fold the WAL into the file: the file is copied next.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return count


def _build_tables(template: Database, workdir: Path, sizes: tuple[int, ...]) -> dict[int, Database]:
    """One database per size, each grown from the previous one; a size cut short by the time budget is skipped."""
    work = template.copy(workdir / "growing.sqlite3")
    deadline = time.monotonic() + ROW_BUDGET_SECONDS
    built: dict[int, Database] = {}
    for size in sizes:
        started = time.monotonic()
        reached = _grow(work.path, size, deadline)
        print(f"  {reached} rows ({time.monotonic() - started:.0f} s)", flush=True)
        if reached < size:
            break
        target = workdir / f"rows-{size}.sqlite3"
        shutil.copyfile(work.path, target)
        built[size] = Database(target, template.token)
    work.path.unlink()
    return built


def _label(size: int) -> str:
    if size >= 1_000_000 and size % 1_000_000 == 0:
        return f"{size // 1_000_000}M"
    return f"{size // 1000}k" if size >= 1000 and size % 1000 == 0 else str(size)


def run(scale: Scale, workdir: Path) -> Section:
    section = Section("scale", "Scale: flows with more steps; page-1 reads of GET /api/executions/ as the table grows")
    logs = workdir / "logs"
    template = prepare_database(workdir / "template.sqlite3")
    untraced = {"OTEL_SDK_DISABLED": "true"}
    step_flows = _step_flows()
    servers: list[Server] = []
    try:
        server = start_server("steps", template.copy(workdir / "steps.sqlite3"), log_dir=logs, env=untraced)
        servers.append(server)
        scripts = {label: post_script(template.token, {"flow": name, "inputs": flows.INPUTS})
                   for label, name in step_flows.items()}
        steps: dict[str, list[Load]] = {label: [] for label in step_flows}
        order = list(step_flows)
        for round_number in range(scale.rounds):
            for label in order[round_number % len(order):] + order[: round_number % len(order)]:
                steps[label].append(wrk(server.url + "/api/executions/", scripts[label], seconds=scale.seconds,
                                        connections=CONNECTIONS, timeout=30))
            print(f"  steps round {round_number + 1}: " + ", ".join(f"{n} {steps[n][-1].rps:.1f}/s" for n in order),
                  flush=True)
        server.stop()

        tables = _build_tables(template, workdir, scale.row_counts)
        skipped = [size for size in scale.row_counts if size not in tables]
        if skipped:
            section.notes.append(f"not measured: {', '.join(_label(s) for s in skipped)} rows (building the table "
                                 f"took longer than the {ROW_BUDGET_SECONDS} s budget)")
        readers = {size: start_server(f"rows-{_label(size)}", database, log_dir=logs, env=untraced)
                   for size, database in tables.items()}
        servers += readers.values()
        script = get_script(template.token)
        for reader in readers.values():
            reader.get("/api/executions/")
        reads: dict[int, list[Load]] = {size: [] for size in readers}
        sizes = list(readers)
        for round_number in range(scale.rounds):
            for size in sizes[round_number % len(sizes):] + sizes[: round_number % len(sizes)]:
                reads[size].append(wrk(readers[size].url + "/api/executions/", script, seconds=scale.seconds,
                                       connections=1, timeout=60))
            print(f"  reads round {round_number + 1}: "
                  + ", ".join(f"{_label(s)} {reads[s][-1].p50_ms:.1f} ms" for s in sizes), flush=True)
    finally:
        for server in servers:
            server.stop()

    two = [load.rps for load in steps["2 steps"]]
    for label, loads in steps.items():
        rps = [load.rps for load in loads]
        section.rows.append(Row(f"executions/s, {label}",
                                f"p99 {statistics.median(load.p99_ms for load in loads):.0f} ms; "
                                f"vs 2 steps {ratios(rps, two).text()}", Spread.of(rps), "", 1))
    for size, loads in reads.items():
        section.rows.append(Row(f"GET /api/executions/ page 1 at {_label(size)} rows, p50 ms",
                                f"p99 {statistics.median(load.p99_ms for load in loads):.1f} ms",
                                Spread.of(load.p50_ms for load in loads), "", 1))
    if len(reads) > 1:
        smallest, largest = min(reads), max(reads)
        growth = ratios([load.p50_ms for load in reads[largest]], [load.p50_ms for load in reads[smallest]])
        section.rows.append(Row(f"page-1 p50 at {_label(largest)} / at {_label(smallest)} rows", "", growth,
                                "~1: must not grow with the table"))
    section.raw = {"steps": {k: [x.__dict__ for x in v] for k, v in steps.items()},
                   "reads": {str(k): [x.__dict__ for x in v] for k, v in reads.items()}}
    section.notes += [
        f"untraced gunicorn (shipped config), SQLite; steps: sync POSTs, wrk {CONNECTIONS} connections, "
        f"{scale.seconds} s each, {scale.rounds} rounds rotating; fan-out to N: one root step and N independent "
        "steps after it",
        "reads: rows bulk-inserted with SQL (copies of one finished execution, created 1 ms apart), one server per "
        "table size, wrk 1 connection, rotating",
    ]
    return section
