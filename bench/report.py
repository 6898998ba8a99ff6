"""The results table (terminal) and bench/RESULTS.md, rebuilt from bench/results.json after every run."""

from __future__ import annotations

import json
from pathlib import Path

from bench.core import Section

ORDER = ["inprocess", "service", "cli", "async", "scale"]


def table(sections: list[Section]) -> str:
    """A plain-text table: what | median (min-max) | other figures | target."""
    lines = []
    for section in sections:
        lines.append(f"-- {section.title}")
        width = max([len(row.what) for row in section.rows] + [20])
        for row in section.rows:
            lines.append(f"   {row.what:<{width}}  {row.value_text():<24}  {row.figures:<44}  {row.target}")
        lines += [f"   note: {note}" for note in section.notes]
    return "\n".join(lines)


def _markdown(section: Section) -> list[str]:
    lines = [f"## {section.title}", "",
             f"`{section.command}` — {section.date}, commit `{section.commit}`, {section.seconds:.0f} s", ""]
    if section.rows:
        lines += ["| what | median (min-max) | figures | target |", "|---|---|---|---|"]
        lines += [f"| {row.what} | {row.value_text()} | {row.figures} | {row.target} |" for row in section.rows]
        lines.append("")
    lines += [f"- {note}" for note in section.notes]
    return [*lines, ""]


def save(directory: Path, sections: list[Section], host: dict[str, str], *, smoke: bool) -> list[Section]:
    """Merge these sections into results.json (other sections keep their last results); write RESULTS.md."""
    path = directory / "results.json"
    stored = json.loads(path.read_text()) if path.exists() else {"sections": {}}
    for section in sections:
        stored["sections"][section.name] = section.as_dict()
        stored.setdefault("machines", {})[section.name] = host
    path.write_text(json.dumps(stored, indent=1, sort_keys=True) + "\n")
    every = [Section.from_dict(stored["sections"][name]) for name in ORDER if name in stored["sections"]]
    lines = ["# Benchmark results", "",
             "Written by `bench/run.py` (see bench/README.md for what each figure means and how it is measured). "
             "Every figure is measured side by side in one run: the two sides alternate in rounds, and a cell "
             "shows the median with the (min-max) over rounds." + (" SMOKE RUN: tiny sizes, meaningless figures."
                                                                   if smoke else ""), ""]
    hosts = {json.dumps(stored["machines"][s.name], sort_keys=True) for s in every}
    for text in sorted(hosts):
        names = [s.name for s in every if json.dumps(stored["machines"][s.name], sort_keys=True) == text]
        lines += [f"Machine and versions for {', '.join(names)}:", ""]
        lines += [f"- {key}: {value}" for key, value in json.loads(text).items()]
        lines.append("")
    for section in every:
        lines += _markdown(section)
    (directory / "RESULTS.md").write_text("\n".join(lines))
    return every
