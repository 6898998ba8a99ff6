"""The service under gunicorn (shipped config): executions/s vs a plain DRF insert, and what tracing costs."""

from __future__ import annotations

import re
import statistics
from pathlib import Path

from bench import flows
from bench.core import Row, Scale, Section, Spread, free_port
from bench.stack import Load, get_script, post_script, prepare_database, start_server, start_sink, wrk

CONNECTIONS = 4
REQUEST = {"flow": flows.TWO, "inputs": flows.INPUTS}
TRACED = {
    "otlp": "OTLP/HTTP to a local sink",
    "store": "embedded store (the default)",
    "down": "OTLP to a backend that is down",
}
# Metrics on versus off with the same tracing (the default store): OTLP metrics and logs pushed every second.
METRICS_INTERVAL_MS = 1000
WARNING_LINE = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback")


def run(scale: Scale, workdir: Path) -> Section:
    section = Section("service",
                      "Service: gunicorn with flowexec/gunicorn.conf.py, wrk on 127.0.0.1, SQLite, DEBUG off")
    logs = workdir / "logs"
    database = prepare_database(workdir / "template.sqlite3")
    sink, sink_url = start_sink(log_dir=logs)
    dead_url = f"http://127.0.0.1:{free_port()}/v1/traces"
    environments = {
        "untraced": {"OTEL_SDK_DISABLED": "true"},
        "otlp": {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": sink_url},
        "store": {},
        "metrics": {
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_LOGS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": sink_url.removesuffix("/v1/traces"),
            "OTEL_METRIC_EXPORT_INTERVAL": str(METRICS_INTERVAL_MS),
        },
        "down": {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": dead_url},
    }
    servers = {}
    try:
        for name, env in environments.items():
            servers[name] = start_server(name, database.copy(workdir / f"{name}.sqlite3"), log_dir=logs, env=env)
        token = database.token
        targets = {
            "reference": (servers["untraced"], "/bench/ref/", post_script(token, REQUEST)),
            "untraced": (servers["untraced"], "/api/executions/", post_script(token, REQUEST)),
            **{name: (servers[name], "/api/executions/", post_script(token, REQUEST)) for name in (*TRACED, "metrics")},
        }
        execution_id = servers["untraced"].post("/api/executions/", REQUEST)["id"]
        targets["read"] = (servers["untraced"], f"/api/executions/{execution_id}/", get_script(token))
        loads: dict[str, list[Load]] = {name: [] for name in targets}
        # Each measurement sits between two untraced ones and is compared with their mean: on a shared,
        # noisy machine a ratio of neighbours seconds apart holds where one of windows a minute apart does not.
        brackets: dict[str, list[tuple[Load, Load]]] = {name: [] for name in targets if name != "untraced"}
        order = list(brackets)
        window = max(1, round(scale.seconds * 0.6))

        def measure(name: str) -> Load:
            server, path, script = targets[name]
            load = wrk(server.url + path, script, seconds=window, connections=CONNECTIONS)
            loads[name].append(load)
            return load

        for round_number in range(scale.rounds):
            shift = round_number % len(order)
            before = measure("untraced")
            for name in order[shift:] + order[:shift]:
                measure(name)
                after = measure("untraced")
                brackets[name].append((before, after))
                before = after
            print(f"  round {round_number + 1}: " + ", ".join(f"{n} {loads[n][-1].rps:.0f}/s" for n in order)
                  + f", untraced {statistics.median(x.rps for x in loads['untraced'][-len(order) - 1:]):.0f}/s",
                  flush=True)
        warnings = [line for line in servers["down"].process.log().splitlines() if WARNING_LINE.search(line)]
        workers = servers["untraced"].workers()
    finally:
        for server in servers.values():
            server.stop()
        sink.stop()

    def rps(name: str) -> list[float]:
        return [load.rps for load in loads[name]]

    def p99(name: str) -> list[float]:
        return [load.p99_ms for load in loads[name]]

    def median(values: list[float]) -> float:
        return statistics.median(values)

    def versus_untraced(name: str, field: str) -> list[float]:
        """Per measurement: its figure over the mean of the untraced measurements just before and after it."""
        return [getattr(load, field) / ((getattr(b, field) + getattr(a, field)) / 2)
                for load, (b, a) in zip(loads[name], brackets[name], strict=True)]

    section.raw = {name: [load.__dict__ for load in series] for name, series in loads.items()}
    section.rows += [
        Row("untraced executions/s", f"p99 {median(p99('untraced')):.1f} ms", Spread.of(rps("untraced")), "", 1),
        Row("plain DRF one-insert POST (bench/refapp), requests/s", f"p99 {median(p99('reference')):.1f} ms",
            Spread.of(rps("reference")), "", 1),
        Row("untraced executions/s / reference requests/s", "same server, same auth and middleware",
            Spread.of(1 / r for r in versus_untraced("reference", "rps")), ">= 0.6"),
        Row("GET /api/executions/{id}/ requests/s, untraced", f"p99 {median(p99('read')):.1f} ms",
            Spread.of(rps("read")), "", 1),
    ]
    metrics_vs_store = [m.rps / s.rps for m, s in zip(loads["metrics"], loads["store"], strict=True)]
    metrics_p99 = [m.p99_ms / s.p99_ms for m, s in zip(loads["metrics"], loads["store"], strict=True)]
    section.rows += [
        Row(f"traced + metrics and logs over OTLP (every {METRICS_INTERVAL_MS} ms) / traced, executions/s",
            f"{median(rps('metrics')):.1f} vs {median(rps('store')):.1f}/s; both to the embedded store",
            Spread.of(metrics_vs_store), "nothing measurable"),
        Row("traced + metrics and logs / traced, p99 latency",
            f"{median(p99('metrics')):.1f} vs {median(p99('store')):.1f} ms", Spread.of(metrics_p99),
            "nothing measurable"),
    ]
    for name, label in TRACED.items():
        section.rows += [
            Row(f"traced / untraced executions/s, {label}",
                f"{median(rps(name)):.1f} vs {median(rps('untraced')):.1f}/s", Spread.of(versus_untraced(name, "rps")),
                ">= 0.90"),
            Row(f"traced / untraced p99 latency, {label}",
                f"{median(p99(name)):.1f} vs {median(p99('untraced')):.1f} ms",
                Spread.of(versus_untraced(name, "p99_ms")), "<= 1.10"),
        ]
    section.notes += [
        f"gunicorn workers per server (from the shipped config): {workers}; wrk {CONNECTIONS} connections, "
        f"{window} s per measurement, {scale.rounds} rounds, the order rotating each round; every other "
        "measurement is untraced and each ratio divides by the mean of the untraced measurements on either side",
        f"POST body {REQUEST} (sync), flow `{flows.TWO}`; the reference endpoint takes the same body and "
        "inserts one row",
        f"backend down: {len(warnings)} warning/error line(s) in that service's log from start to the last "
        f"measurement (target: one per process; {workers} workers){': ' + warnings[0][:300] if warnings else ''}",
    ]
    return section
