"""What every command shares: one-line errors with exit codes, JSON output, tables, quiet warnings."""

import functools
import json
import math
import os
import sys
import warnings
from typing import Any, Callable, Optional, Sequence

import click

from edgekit.errors import EdgekitError


def fail(message: str, code: int) -> click.exceptions.Exit:
    # One line, always: messages can quote file names or library errors that hold newlines.
    click.echo(f"edgekit: {' '.join(message.split())}", err=True)
    return click.exceptions.Exit(code)


DEBUG_ENV = "EDGEKIT_DEBUG"
# What commands raise on purpose to exit or report a usage error: click handles these itself.
CLI_EXITS = (click.exceptions.Exit, click.exceptions.Abort, click.ClickException)
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


def human_bytes(size: Optional[int]) -> str:
    if size is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def python_warnings(verbose: bool) -> None:
    """Keras's and TensorFlow's Python warnings stay off the terminal, like their native logs; --verbose
    shows each once per place."""
    warnings.simplefilter("default" if verbose else "ignore")
