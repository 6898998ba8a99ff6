"""Read-only execution statistics for the admin dashboard: rates, error rates, duration percentiles, slow steps."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone

from executions.models import Execution, StepRun

# name -> (window, bucket width)
RANGES: dict[str, tuple[timedelta, timedelta]] = {
    "hour": (timedelta(hours=1), timedelta(minutes=1)),
    "day": (timedelta(days=1), timedelta(minutes=30)),
    "week": (timedelta(days=7), timedelta(hours=4)),
}
DEFAULT_RANGE = "hour"
# The dashboard reads at most this many rows per query (newest first): its cost stays flat as tables grow.
MAX_ROWS = 20_000


@dataclass(frozen=True)
class Bucket:
    """Executions created in [start, end) of one flow."""

    start: datetime
    end: datetime
    succeeded: int = 0
    failed: int = 0
    other: int = 0

    @property
    def total(self) -> int:
        return self.succeeded + self.failed + self.other


@dataclass
class FlowStats:
    """One flow over the window."""

    flow: str
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    unfinished: int = 0
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    slowest_id: str = ""
    buckets: list[Bucket] = field(default_factory=list)

    @property
    def error_rate(self) -> float:
        """Failed share of the finished executions (0..1)."""
        finished = self.succeeded + self.failed + self.cancelled
        return self.failed / finished if finished else 0.0


@dataclass(frozen=True)
class StepStats:
    """One step of one flow over the window."""

    flow: str
    step: str
    type: str
    runs: int
    failed: int
    p95: float
    max: float
    slowest_execution_id: str


@dataclass(frozen=True)
class Dashboard:
    """Everything the dashboard draws for one range."""

    range: str
    since: datetime
    until: datetime
    bucket: timedelta
    flows: list[FlowStats]
    steps: list[StepStats]
    truncated: bool


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of sorted values (None when empty)."""
    if not values:
        return None
    rank = max(math.ceil(fraction * len(values)), 1)
    return values[rank - 1]


def _bucket_starts(since: datetime, until: datetime, width: timedelta) -> list[datetime]:
    count = math.ceil((until - since) / width)
    return [since + width * index for index in range(count)]


def dashboard(*, range_name: str = DEFAULT_RANGE, now: datetime | None = None, slowest_steps: int = 10) -> Dashboard:
    """Per-flow rates, error rates and duration percentiles, and the slowest steps, over one range."""
    window, width = RANGES.get(range_name, RANGES[DEFAULT_RANGE])
    until = now or timezone.now()
    # Buckets aligned to the bucket width, so links and bars stay put between reloads.
    epoch = datetime(2000, 1, 1, tzinfo=until.tzinfo)
    until = epoch + math.ceil((until - epoch) / width) * width
    since = until - window
    rows = list(
        Execution.objects.filter(created_at__gte=since, created_at__lt=until)
        .order_by("-created_at")
        .values_list("pk", "flow_name", "status", "created_at", "started_at", "finished_at")[:MAX_ROWS]
    )
    starts = _bucket_starts(since, until, width)
    flows: dict[str, FlowStats] = {}
    counts: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0, 0]))
    durations: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for pk, flow, status, created, started, finished in rows:
        stats = flows.setdefault(flow, FlowStats(flow))
        stats.total += 1
        slot = counts[flow][int((created - since) / width)]
        if status == Execution.Status.SUCCEEDED:
            stats.succeeded += 1
            slot[0] += 1
        elif status == Execution.Status.FAILED:
            stats.failed += 1
            slot[1] += 1
        else:
            stats.cancelled += status == Execution.Status.CANCELLED
            stats.unfinished += status in (Execution.Status.PENDING, Execution.Status.RUNNING)
            slot[2] += 1
        if started and finished and status in Execution.FINISHED:
            durations[flow].append(((finished - started).total_seconds(), str(pk)))
    for flow, stats in flows.items():
        ordered = sorted(durations[flow])
        seconds = [value for value, _ in ordered]
        stats.p50, stats.p95, stats.p99 = (percentile(seconds, f) for f in (0.5, 0.95, 0.99))
        stats.slowest_id = ordered[-1][1] if ordered else ""
        stats.buckets = [
            Bucket(start, start + width, *counts[flow].get(index, [0, 0, 0])) for index, start in enumerate(starts)
        ]
    steps, steps_truncated = _slowest_steps(since, until, slowest_steps)
    return Dashboard(
        range=range_name if range_name in RANGES else DEFAULT_RANGE,
        since=since,
        until=until,
        bucket=width,
        flows=sorted(flows.values(), key=lambda stats: stats.flow),
        steps=steps,
        truncated=len(rows) >= MAX_ROWS or steps_truncated,
    )


def _slowest_steps(since: datetime, until: datetime, limit: int) -> tuple[list[StepStats], bool]:
    rows = list(
        StepRun.objects.filter(
            execution__created_at__gte=since, execution__created_at__lt=until, finished_at__isnull=False
        )
        .exclude(started_at__isnull=True)
        .order_by("-execution__created_at")
        .values_list("execution__flow_name", "name", "type", "status", "started_at", "finished_at", "execution_id")[
            :MAX_ROWS
        ]
    )
    groups: dict[tuple[str, str, str], list[tuple[float, str, str]]] = defaultdict(list)
    for flow, step, step_type, status, started, finished, execution_id in rows:
        groups[(flow, step, step_type)].append(((finished - started).total_seconds(), status, str(execution_id)))
    stats = []
    for (flow, step, step_type), runs in groups.items():
        runs.sort()
        seconds = [value for value, _, _ in runs]
        stats.append(
            StepStats(
                flow=flow,
                step=step,
                type=step_type,
                runs=len(runs),
                failed=sum(status == StepRun.Status.FAILED for _, status, _ in runs),
                p95=percentile(seconds, 0.95) or 0.0,
                max=seconds[-1],
                slowest_execution_id=runs[-1][2],
            )
        )
    stats.sort(key=lambda item: item.p95, reverse=True)
    return stats[:limit], len(rows) >= MAX_ROWS
