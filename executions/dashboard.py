"""The admin dashboard (staff only): per-flow charts as server-rendered SVG, each bar linking to its executions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from executions import stats

CHART_WIDTH = 720
CHART_HEIGHT = 90
PERCENTILE_WIDTH = 300
PERCENTILE_LEFT = 40
PERCENTILE_ROW = 22


@dataclass(frozen=True)
class Segment:
    """One coloured part of a bar: where it is drawn and which executions it links to."""

    kind: str  # succeeded, failed, other
    y: float
    height: float
    href: str


@dataclass(frozen=True)
class Bar:
    """One time bucket of one flow."""

    x: float
    width: float
    title: str
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class PercentileBar:
    """p50/p95/p99 of one flow, as a horizontal bar."""

    label: str
    seconds: float
    width: float
    text: str
    y: int

    @property
    def text_x(self) -> float:
        """Where the value is written: just right of the bar."""
        return PERCENTILE_LEFT + self.width + 6


@dataclass(frozen=True)
class FlowChart:
    """Everything the template draws for one flow."""

    stats: stats.FlowStats
    bars: tuple[Bar, ...]
    peak_per_minute: str
    percentiles: tuple[PercentileBar, ...]
    executions_href: str
    failed_href: str
    slowest_href: str


def _changelist(**params: str) -> str:
    return f"{reverse('admin:executions_execution_changelist')}?{urlencode(params)}"


def _window(flow: str, start: datetime, end: datetime, **extra: str) -> str:
    return _changelist(flow_name=flow, created_at__gte=start.isoformat(), created_at__lt=end.isoformat(), **extra)


def format_seconds(seconds: float | None) -> str:
    """e.g. 12 ms, 1.5 s, 2.0 min."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def _bars(flow: stats.FlowStats) -> tuple[Bar, ...]:
    peak = max((bucket.total for bucket in flow.buckets), default=0) or 1
    width = CHART_WIDTH / max(len(flow.buckets), 1)
    bars = []
    for index, bucket in enumerate(flow.buckets):
        segments = []
        bottom = float(CHART_HEIGHT)
        for kind, count, extra in (
            ("failed", bucket.failed, {"status": "failed"}),
            ("succeeded", bucket.succeeded, {"status": "succeeded"}),
            ("other", bucket.other, {}),
        ):
            if not count:
                continue
            height = CHART_HEIGHT * count / peak
            bottom -= height
            segments.append(Segment(kind, round(bottom, 2), round(height, 2),
                                    _window(flow.flow, bucket.start, bucket.end, **extra)))
        title = (
            f"{bucket.start:%Y-%m-%d %H:%M} to {bucket.end:%H:%M} UTC: {bucket.succeeded} succeeded, "
            f"{bucket.failed} failed, {bucket.other} other"
        )
        bars.append(Bar(round(index * width, 2), round(max(width - 1, 1), 2), title, tuple(segments)))
    return tuple(bars)


def flow_chart(flow: stats.FlowStats, dashboard: stats.Dashboard) -> FlowChart:
    """Geometry and links for one flow's charts."""
    minutes = dashboard.bucket.total_seconds() / 60
    peak = max((bucket.total for bucket in flow.buckets), default=0)
    values = [("p50", flow.p50), ("p95", flow.p95), ("p99", flow.p99)]
    longest = max((value or 0 for _, value in values), default=0) or 1
    percentiles = tuple(
        PercentileBar(
            label, value or 0, round(PERCENTILE_WIDTH * (value or 0) / longest, 2), format_seconds(value),
            row * PERCENTILE_ROW,
        )
        for row, (label, value) in enumerate(values)
    )
    slowest = (
        reverse("admin:executions_execution_change", args=[flow.slowest_id]) if flow.slowest_id else ""
    )
    return FlowChart(
        stats=flow,
        bars=_bars(flow),
        peak_per_minute=f"{peak / minutes:.2f}".rstrip("0").rstrip("."),
        percentiles=percentiles,
        executions_href=_window(flow.flow, dashboard.since, dashboard.until),
        failed_href=_window(flow.flow, dashboard.since, dashboard.until, status="failed"),
        slowest_href=slowest,
    )


def dashboard_view(request: HttpRequest) -> HttpResponse:
    """Charts of the last hour, day or week per flow (?range=hour|day|week)."""
    data = stats.dashboard(range_name=request.GET.get("range", stats.DEFAULT_RANGE))
    steps = [
        (step, format_seconds(step.p95), format_seconds(step.max),
         reverse("admin:executions_execution_change", args=[step.slowest_execution_id]))
        for step in data.steps
    ]
    context = {
        **admin.site.each_context(request),
        "title": "Flow dashboard",
        "dashboard": data,
        "charts": [flow_chart(flow, data) for flow in data.flows],
        "steps": steps,
        "ranges": list(stats.RANGES),
        "bucket_minutes": f"{data.bucket.total_seconds() / 60:g}",
        "chart_width": CHART_WIDTH,
        "chart_height": CHART_HEIGHT,
        "percentile_width": PERCENTILE_LEFT + PERCENTILE_WIDTH + 100,
        "percentile_left": PERCENTILE_LEFT,
    }
    return TemplateResponse(request, "admin/flowexec_dashboard.html", context)


# Staff only, through the admin's own login and permission check.
dashboard = admin.site.admin_view(dashboard_view)
# The admin index links here (django.contrib.admin's own templates come first in the app order).
admin.site.index_template = "admin/flowexec_index.html"
