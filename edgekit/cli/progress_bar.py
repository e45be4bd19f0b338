"""The one progress bar: draws what library code reports through edgekit.progress, on a terminal only."""

from __future__ import annotations

import sys
from typing import Any, Optional


class ProgressBar:
    """A `Progress` drawn as a bar with its count when the total is known, a spinner while it is not.

    Off (a no-op) under --json and when stdout is not a terminal. `background=False` redraws only when
    progress is reported, never from rich's refresh thread: a benchmark must not have Python taking a
    core while it times invokes.
    """

    def __init__(self, description: str, enabled: bool = True, background: bool = True):
        self.description = description
        self.enabled = enabled and sys.stdout.isatty()
        self.background = background
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> ProgressBar:
        if self.enabled:
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            class Spinner(SpinnerColumn):
                def render(self, task: Any) -> Any:
                    return super().render(task) if task.total is None else ""

            self._progress = Progress(
                Spinner(),
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[count]}"),
                TimeElapsedColumn(),
                transient=True,
                auto_refresh=self.background,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self.description, total=None, count="")
        return self

    def __call__(self, label: str, done: int, total: Optional[int]) -> None:
        """One report: `done` of `total` steps (total None: unknown, a spinner)."""
        if self._progress is None:
            return
        count = f"{done}/{total}" if total is not None else f"{done}"
        self._progress.update(
            self._task, description=f"{self.description}: {label}", completed=done, total=total, count=count
        )
        if not self.background:
            self._progress.refresh()

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
