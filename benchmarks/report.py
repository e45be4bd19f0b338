"""Gather the scripts' result files (build/bench/results/*.json) into one Markdown report.

Usage: python benchmarks/report.py [--results DIR] [--out FILE]
Writes build/bench/results/RESULTS.md by default; benchmarks/RESULTS.md is the reviewed copy with notes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from workloads import RESULTS, machine_lines

ORDER = (
    "run_vs_bare",
    "bench_vs_litert",
    "int8_speedup",
    "cold_start",
    "convert_overhead",
    "convert_process",
    "preprocess_cost",
    "decode_cost",
)


def ratio_cell(entry: dict) -> str:
    if entry["ratio"] is None:
        return "-"
    details = entry["details"]
    for low, high in (("ratio_p25", "ratio_p75"), ("speedup_p25", "speedup_p75")):
        if low in details:
            return f"{entry['ratio']:.3f} ({details[low]:.3f}–{details[high]:.3f})"
    return f"{entry['ratio']:.3f}"


def render(files: list[dict]) -> str:
    lines = [
        "| # | measurement | workload | threads | edgekit | reference | ratio (per-round IQR) | goal | met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for data in files:
        for entry in data["rows"]:
            met = {True: "yes", False: "**no**", None: "-"}[entry["met"]]
            threads = "-" if entry["threads"] is None else str(entry["threads"])
            lines.append(
                f"| {entry['item']} | {entry['measure']} | {entry['workload']} | {threads} | {entry['edgekit']} "
                f"| {entry['reference']} | {ratio_cell(entry)} | {entry['goal']} | {met} |"
            )
    runs = [
        f"- `{data['command']}`: {data['seconds']:.0f} s, load average {data['load_average_before'][:1]} → "
        f"{data['load_average_after'][:1]}"
        for data in files
    ]
    notes = [f"- {note}" for data in files for note in data.get("notes", [])]
    header = [
        *machine_lines(files[0]["machine"]),
        "",
        "Runs (1-minute load average before → after each script):",
        *runs,
        "",
    ]
    return "\n".join([*header, *lines, "", *(["Notes:", *notes, ""] if notes else [])])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    found = {path.stem: path for path in args.results.glob("*.json")}
    names = [name for name in ORDER if name in found] + sorted(set(found) - set(ORDER))
    if not names:
        raise SystemExit(f"{args.results}: no results; run `make bench`")
    # Only the scripts' row files: pruning.json (PRUNING.md's raw data) has a shape of its own.
    files = [data for data in (json.loads(found[name].read_text()) for name in names) if "rows" in data]
    text = render(files)
    out = args.out or args.results / "RESULTS.md"
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
