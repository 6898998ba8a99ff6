"""The benchmark suite runs end to end in its tiny --smoke mode (it measures nothing: never a speed assertion)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.live import ROOT

pytestmark = pytest.mark.slow

SECTIONS = {"inprocess", "service", "cli", "async", "scale"}


@pytest.mark.skipif(not (shutil.which("wrk") and shutil.which("hyperfine")),
                    reason="wrk and hyperfine are not installed (bench/run.py installs them with apt-get)")
def test_bench_smoke_run_fills_every_section_and_writes_results(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DATABASE_URL"))}
    env["PYTHONPATH"] = str(ROOT)
    shipped = {name: (ROOT / "bench" / name).read_bytes() if (ROOT / "bench" / name).exists() else None
               for name in ("results.json", "RESULTS.md")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--workdir", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]
    stored = json.loads((tmp_path / "results.json").read_text())["sections"]
    assert set(stored) == SECTIONS
    for name, section in stored.items():
        assert section["rows"], f"section {name} has no rows: {section['notes']}"
        assert not any(note.startswith("FAILED") for note in section["notes"]), section["notes"]
    results = (tmp_path / "RESULTS.md").read_text()
    assert "SMOKE RUN" in results and "nproc" in results
    assert "traced / untraced" in result.stdout
    # A smoke run writes only under --workdir: the committed results stay as they were.
    assert shipped == {name: (ROOT / "bench" / name).read_bytes() if (ROOT / "bench" / name).exists() else None
                       for name in shipped}


def test_instruction_counts_are_read_per_thread_from_callgrinds_files(tmp_path: Path) -> None:
    from bench.instructions import _thread_totals

    (tmp_path / "callgrind.traced-0-01").write_text("# callgrind format\nevents: Ir\nsummary: 2235223838\n")
    (tmp_path / "callgrind.traced-0-02").write_text("events: Ir\nsummary: 214554\nfn=x\n")
    (tmp_path / "callgrind.traced-300-01").write_text("summary: 9\n")  # another process's file: not this one's
    assert _thread_totals(tmp_path / "callgrind.traced-0") == {"01": 2235223838, "02": 214554}
