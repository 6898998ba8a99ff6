"""Child process: run the bench flow through submission.execution_submit(inline=True) (the runflow path) on command.

    python -m bench.inprocess_worker     then JSON lines on stdin:
    {"op": "run", "count": N}            -> {"seconds": [...]} wall time of each execution
    {"op": "profile", "count": N, "html": path, "text": path}  -> pyinstrument over N executions
    {"op": "statements", "count": N}     -> SQL statements per execution, every connection (BENCH_COUNT_SQL=1)
    {"op": "untimed", "count": N}        -> N executions, then the spans flushed on another thread (run under
                                            callgrind by bench.instructions: the executing thread does only them)

Tracing is set up as `manage.py runflow` does it (instrument_django_process), so OTEL_SDK_DISABLED
or OTEL_TRACES_EXPORTER in the environment decide traced or not.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

import django

from bench.worker import reply

_statements = {"count": 0}
_lock = threading.Lock()


def _count_statement(_sql: str) -> None:
    with _lock:
        _statements["count"] += 1


def _count_sql_on_new_connections() -> None:
    from django.db.backends.signals import connection_created

    def install(sender: Any, connection: Any, **kwargs: Any) -> None:
        if connection.vendor == "sqlite":
            connection.connection.set_trace_callback(_count_statement)

    connection_created.connect(install, weak=False)


def main() -> None:
    django.setup()
    if os.environ.get("BENCH_COUNT_SQL") == "1":
        _count_sql_on_new_connections()
    from tracing.instrumentation import instrument_django_process

    state = instrument_django_process("flowexec-manage")
    from opentelemetry import trace

    from bench import flows
    from executions import submission

    provider = trace.get_tracer_provider()

    def execute() -> None:
        execution = submission.execution_submit(flow=flows.TWO, inputs=flows.INPUTS, inline=True, client="manage")
        if execution.status != "succeeded":
            raise RuntimeError(f"execution {execution.pk} {execution.status}: {execution.error}")

    def flush() -> None:
        # Spans still queued would be exported during the other side's batch: finish them untimed.
        if hasattr(provider, "force_flush"):
            provider.force_flush()

    reply({"ready": True, "tracing": getattr(state, "description", str(state))})
    for line in sys.stdin:
        command = json.loads(line)
        try:
            if command["op"] == "run":
                seconds = []
                for _ in range(command["count"]):
                    start = time.perf_counter()
                    execute()
                    seconds.append(time.perf_counter() - start)
                flush()
                reply({"seconds": seconds})
            elif command["op"] == "profile":
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.0002)
                with profiler:
                    for _ in range(command["count"]):
                        execute()
                flush()
                with open(command["html"], "w") as out:
                    out.write(profiler.output_html())
                with open(command["text"], "w") as out:
                    out.write(profiler.output_text(unicode=True, color=False, show_all=False))
                reply({"ok": True})
            elif command["op"] == "untimed":
                for _ in range(command["count"]):
                    execute()
                flusher = threading.Thread(target=flush, name="bench-flush")
                flusher.start()
                flusher.join()
                reply({"ok": True})
            elif command["op"] == "statements":
                execute()
                flush()
                with _lock:
                    _statements["count"] = 0
                for _ in range(command["count"]):
                    execute()
                with _lock:
                    counted = _statements["count"]
                reply({"per_execution": counted / command["count"]})
        except Exception as exc:
            reply({"error": f"{type(exc).__name__}: {exc}"})


if __name__ == "__main__":
    main()
