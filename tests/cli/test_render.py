"""flowexec.cli.render: span trees, executions, the progress line."""

from __future__ import annotations

import io

from flowexec.cli import render


def test_trace_renders_an_indented_tree_with_services_durations_and_errors():
    data = {
        "trace_id": "ab" * 16,
        "spans": [
            {
                "name": "flowexec run",
                "service_name": "flowexec-cli",
                "kind": "INTERNAL",
                "duration_ms": 120.5,
                "status": "UNSET",
                "start_time": "1",
                "children": [
                    {
                        "name": "POST",
                        "service_name": "flowexec-cli",
                        "kind": "CLIENT",
                        "duration_ms": 100,
                        "status": "UNSET",
                        "start_time": "2",
                        "children": [
                            {
                                "name": "step boom",
                                "service_name": "flowexec-service",
                                "kind": "INTERNAL",
                                "duration_ms": 3,
                                "status": "ERROR",
                                "status_message": "this step\nalways fails",
                                "start_time": "3",
                                "children": [],
                            }
                        ],
                    }
                ],
            }
        ],
    }
    lines = render.render_trace(data).splitlines()
    assert lines == [
        f"trace {'ab' * 16}",
        "  flowexec run  [flowexec-cli]  120.5 ms",
        "    POST  [flowexec-cli]  client  100.0 ms",
        "      step boom  [flowexec-service]  3.0 ms  ERROR: this step always fails",
    ]


def test_execution_rendering_shows_outputs_ids_and_where_the_trace_is():
    execution = {
        "id": "e-1",
        "flow": "hello",
        "flow_version": 1,
        "status": "succeeded",
        "outputs": {"greeting": "Hello, Ada!"},
        "trace_id": "t" * 32,
        "request_id": "rid",
        "duration_ms": 12,
        "links": {"admin": "http://svc/admin/x/", "trace_ui": "http://jaeger/trace/tt"},
    }
    text = render.render_execution(execution, "http://svc", steps=False)
    assert '"greeting": "Hello, Ada!"' in text
    for fragment in (
        "execution id: e-1",
        f"trace id:     {'t' * 32}",
        "admin:        http://svc/admin/x/",
        "trace UI:     http://jaeger/trace/tt",
        f"flowexec --url http://svc trace {'t' * 32}",
    ):
        assert fragment in text
    assert "trace UI" not in render.render_execution({**execution, "links": {"trace_ui": None}}, "u", steps=False)


def test_progress_counts_finished_steps_and_stays_silent_off_a_terminal():
    execution = {
        "flow": "slow",
        "status": "running",
        "step_count": 3,
        "steps": [{"status": "succeeded"}, {"status": "running"}],
    }
    assert render.progress_line(execution, 1.25) == "slow: running, 1/3 steps, 1.2s elapsed"
    quiet = io.StringIO()
    render.Progress(quiet, enabled=False).update(execution, 1.0)
    assert quiet.getvalue() == ""
    shown = io.StringIO()
    progress = render.Progress(shown, enabled=True)
    progress.update(execution, 1.0)
    progress.close()
    assert "1/3 steps" in shown.getvalue()
    assert shown.getvalue().endswith("\r\033[K")
