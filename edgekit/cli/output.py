"""What every command shares: one-line errors with exit codes, JSON output, tables, progress."""

import functools
import json
import math
import os
import sys
from typing import Any, Callable, List, Optional, Sequence

import typer

from edgekit.errors import EdgekitError


def fail(message: str, code: int) -> "typer.Exit":
    # One line, always: messages can quote file names or library errors that hold newlines.
    typer.echo(f"edgekit: {' '.join(message.split())}", err=True)
    return typer.Exit(code)


DEBUG_ENV = "EDGEKIT_DEBUG"
# What commands raise on purpose to exit or report a usage error: typer/click handle these themselves.
CLI_EXITS = (typer.Exit, typer.Abort, *(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"))
_interrupted: list[int] = []  # the signals received, set by the CLI's handlers


def interrupt(signum: int, frame: object) -> None:
    """SIGINT/SIGTERM handler: unwind like Ctrl-C, and remember it, because TensorFlow sometimes turns a
    KeyboardInterrupt raised inside its own code into another exception."""
    _interrupted.append(signum)
    raise KeyboardInterrupt


def reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn edgekit's errors (and Ctrl-C) into one line on stderr and the right exit code. Anything
    else is a bug: one line too, with the traceback only when $EDGEKIT_DEBUG is set."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except EdgekitError as exc:
            if _interrupted:
                raise fail("interrupted", 130) from None
            raise fail(f"error: {exc}", exc.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except CLI_EXITS:
            raise
        except MemoryError:
            raise fail("error: out of memory", 1) from None
        except OSError as exc:
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            raise fail(f"error: {where}{exc.strerror or exc}", 1) from None
        except Exception as exc:
            if _interrupted:
                raise fail("interrupted", 130) from None
            if os.environ.get(DEBUG_ENV):
                raise
            raise fail(
                f"internal error: {type(exc).__name__}: {exc} (a bug: please report it; {DEBUG_ENV}=1 shows the "
                "traceback)",
                1,
            ) from None

    return wrapper


def finite_json(data: Any) -> Any:
    """NaN and infinity (a model that outputs them, say) as null: they are not JSON."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite_json(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_json(value) for value in data]
    return data


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(finite_json(data), indent=2, allow_nan=False) + "\n")


def console():
    from rich.console import Console

    # Off a terminal (pipes, CI logs) rich would wrap at 80 columns; tables read better unwrapped.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def table(title: Optional[str], columns: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[str] = ()):
    """A rich table; columns named in `right` (numbers) are right-aligned."""
    from rich.table import Table

    result = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for column in columns:
        result.add_column(column, justify="right" if column in right else "left")
    for row in rows:
        result.add_row(*[str(cell) for cell in row])
    return result


def split_values(values: Optional[List[str]], name: str) -> Optional[List[float]]:
    """Accept `--mean 127.5` or `--mean 123.7,116.3,103.5` (or the option repeated)."""
    if not values:
        return None
    numbers = []
    for value in values:
        for part in value.split(","):
            try:
                numbers.append(float(part))
            except ValueError:
                raise typer.BadParameter(f"{part!r} is not a number", param_hint=f"--{name}") from None
    return numbers


class StepProgress:
    """A progress bar on a terminal, nothing otherwise (and never under --json)."""

    def __init__(self, enabled: bool, description: str):
        self.enabled = enabled and sys.stdout.isatty()
        self.description = description
        self._progress = None
        self._task = None

    def __enter__(self) -> "StepProgress":
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeElapsedColumn(),
                transient=True,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self.description, total=None)
        return self

    def __call__(self, label: str, done: int, total: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=f"{self.description}: {label}", completed=done, total=total)

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)


def human_bytes(size: Optional[int]) -> str:
    if size is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)
