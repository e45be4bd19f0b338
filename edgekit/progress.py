"""The one progress protocol: library code reports steps, only the CLI draws them.

Slow work (conversion, calibration, fine-tuning, benchmarks) takes an optional `progress` callable
and calls it with a label, the steps done and the total (None while the total is unknown: the bar
shows a spinner then). Library code never prints.
"""

from __future__ import annotations

from typing import Optional, Protocol


class Progress(Protocol):
    def __call__(self, label: str, done: int, total: Optional[int]) -> None: ...


def report(progress: Progress | None, label: str, done: int, total: int | None) -> None:
    """Call `progress` when there is one."""
    if progress is not None:
        progress(label, done, total)


class Steps:
    """Counts steps of a known total for a `Progress` (the total may grow as work is discovered)."""

    def __init__(self, progress: Progress | None, total: int | None):
        self.progress = progress
        self.total = total
        self.done = 0

    def add(self, count: int) -> None:
        """More steps than planned (work found on the way)."""
        if self.total is not None:
            self.total += count

    def __call__(self, label: str) -> None:
        """One step finished."""
        self.done += 1
        if self.total is not None and self.done > self.total:
            self.total = self.done
        report(self.progress, label, self.done, self.total)
