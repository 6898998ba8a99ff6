"""Run a stored flow in this process (or on a remote service) and print its outputs."""

from __future__ import annotations

import json
import os
import re
import sys
import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from opentelemetry import baggage, context, trace

from executions import selectors, submission
from executions.engine.errors import FlowNotFound, FlowValidationError
from executions.models import Execution
from executions.serializers import ExecutionOutput
from flowexec import bootstrap
from flowexec.cli.carriers import environment_context, environment_request_id
from flowexec.cli.inputs import InputSyntaxError, parse_pairs
from flowexec.cli.main import main as cli_main
from tracing import attributes as keys

SERVICE_NAME = "flowexec-manage"


class Command(BaseCommand):
    help = (
        "Run a stored flow and print its outputs. In-process by default; with --remote URL it "
        "calls that service over HTTP, propagating the trace, like the flowexec CLI."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("flow")
        parser.add_argument("--input", dest="inputs", action="append", default=[], metavar="KEY=VALUE",
                            help="a flow input, repeatable: KEY=VALUE sends a string, KEY:=JSON a JSON value")
        parser.add_argument("--remote", metavar="URL", help="run on this service instead of in-process")
        parser.add_argument("--token", help="API token for --remote (default: $FLOWEXEC_TOKEN)")
        parser.add_argument("--request-id", default="", help="request id to record (default: a new UUID)")
        parser.add_argument("--json", action="store_true", help="print the whole execution as JSON")

    def handle(self, *args: Any, flow: str, inputs: list[str], remote: str | None, **options: Any) -> None:
        request_id = options["request_id"]
        if request_id and not re.fullmatch(keys.REQUEST_ID_PATTERN, request_id):
            raise CommandError(f"invalid --request-id {request_id!r}: expected {keys.REQUEST_ID_PATTERN}", returncode=2)
        try:
            values = parse_pairs(inputs)
        except InputSyntaxError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        if remote:
            self._run_remote(flow, inputs, remote, options)
            return
        # Spans still queued at exit are flushed, within a bound, by the provider's atexit hook.
        bootstrap.start(SERVICE_NAME, serve=False)
        execution = self._run_here(flow, values, request_id)
        self._print(execution, as_json=options["json"])
        if execution.status != Execution.Status.SUCCEEDED:
            sys.exit(1)

    def _run_here(self, flow: str, inputs: dict[str, Any], request_id: str) -> Execution:
        tracer = trace.get_tracer(keys.TRACER_NAME)
        request_id = request_id or environment_request_id(os.environ) or str(uuid.uuid4())
        # A parent process's trace (TRACEPARENT/TRACESTATE/BAGGAGE) continues here, as in the flowexec CLI.
        ctx = baggage.set_baggage(keys.REQUEST_ID, request_id, environment_context(os.environ))
        ctx = baggage.set_baggage(keys.CLIENT, Execution.Client.MANAGE, ctx)
        token = context.attach(ctx)
        try:
            with tracer.start_as_current_span(
                "manage.py runflow", attributes={keys.FLOW_NAME: flow, keys.REQUEST_ID: request_id}
            ):
                return submission.execution_submit(
                    flow=flow, inputs=inputs, inline=True, client=Execution.Client.MANAGE, request_id=request_id,
                    user_agent=f"manage.py runflow ({SERVICE_NAME})",
                )
        except (FlowNotFound, FlowValidationError) as exc:
            raise CommandError(str(exc), returncode=2) from exc
        finally:
            context.detach(token)

    def _print(self, execution: Execution, *, as_json: bool) -> None:
        data = ExecutionOutput(selectors.execution_get(execution_id=execution.pk)).data
        if as_json:
            self.stdout.write(json.dumps(data, indent=2, default=str))
            return
        if execution.status == Execution.Status.SUCCEEDED:
            self.stdout.write(json.dumps(execution.outputs, indent=2))
        else:
            self.stderr.write(f"execution {execution.status}: {execution.error}")
        self.stdout.write(f"execution {execution.pk} {execution.status}")
        self.stdout.write(f"trace     {execution.trace_id or '-'}")

    def _run_remote(self, flow: str, inputs: list[str], remote: str, options: dict[str, Any]) -> None:
        argv = ["--url", remote]
        if options.get("token"):
            argv += ["--token", options["token"]]
        if options.get("request_id"):
            argv += ["--request-id", options["request_id"]]
        if options.get("json"):
            argv.append("--json")
        argv += ["run", flow, *(arg for pair in inputs for arg in ("--input", pair))]
        sys.exit(cli_main(argv, service_name=SERVICE_NAME, client=Execution.Client.MANAGE))

