"""What the commands share: their options (defaults from edgekit.defaults, metavars people know), the
parsers of comma-separated values, and a help layout with the arguments and options in named panels."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import click

from edgekit import defaults

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}
PATH = click.Path(path_type=Path)  # existence is the library's to check: its errors name the file


class Argument(click.Argument):
    """A positional argument with a help line (click's have none)."""

    def __init__(self, param_decls: Sequence[str], help: str, **kwargs: Any):
        super().__init__(param_decls, **kwargs)
        self.help = help

    def get_help_record(self, ctx: click.Context) -> tuple[str, str]:
        return self.metavar or self.name.upper(), self.help


class Option(click.Option):
    """An option that belongs to a help panel ("Checks", "Pruning"...)."""

    def __init__(self, *args: Any, panel: Optional[str] = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.panel = panel


class Command(click.Command):
    """--help as the README reads: the arguments with their help, then the options panel by panel."""

    def __init__(self, *args: Any, default_panel: str = "Options", **kwargs: Any):
        kwargs.setdefault("context_settings", CONTEXT)
        super().__init__(*args, **kwargs)
        self.default_panel = default_panel

    def format_arguments(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Arguments are the first panel of format_options (click 8.2+ would list them a second time)."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        panels: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            panel = "Arguments" if isinstance(param, click.Argument) else getattr(param, "panel", None)
            panels.setdefault(panel or self.default_panel, []).append(record)
        for title, records in panels.items():
            with formatter.section(title):
                formatter.write_dl(records)


def argument(name: str, metavar: str, help: str, **kwargs: Any) -> Callable:
    kwargs.setdefault("type", PATH)
    return click.argument(name, cls=Argument, metavar=metavar, help=help, **kwargs)


def option(*decls: str, panel: Optional[str] = None, **kwargs: Any) -> Callable:
    return click.option(*decls, cls=Option, panel=panel, **kwargs)


# --- comma-separated values, parsed while the command line is ----------------------------------


def split_names(values: Sequence[str] | None) -> list[str]:
    """`--keep-float a,b` or `--keep-float a --keep-float b`."""
    return [part.strip() for value in values or () for part in value.split(",") if part.strip()]


def _numbers(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> Optional[list[float]]:
    """`--mean 127.5` or `--mean 123.7,116.3,103.5` (or the option repeated)."""
    numbers = []
    for part in split_names(values):
        try:
            numbers.append(float(part))
        except ValueError:
            raise click.BadParameter(f"{part!r} is not a number") from None
    return numbers or None


def _names(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> list[str]:
    return split_names(values)


def _thread_counts(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> Optional[list[int]]:
    """`--threads 1,2,4` or the option repeated."""
    counts = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part.isdigit() or int(part) < 1:
                raise click.BadParameter(f"{part!r} is not a thread count (1 or more)")
            counts.append(int(part))
    return counts or None


def _writable(ctx: click.Context, param: click.Parameter, path: Optional[Path]) -> Optional[Path]:
    """Refuse an unwritable destination before the work runs, not after."""
    if path is not None and not path.resolve().parent.is_dir():
        raise click.BadParameter(f"folder {path.parent} does not exist")
    return path


def numbers_option(name: str, help: str, panel: Optional[str] = None) -> Callable:
    return option(name, multiple=True, metavar="X[,X...]", callback=_numbers, help=help, panel=panel)


def names_option(name: str, help: str, panel: Optional[str] = None) -> Callable:
    return option(name, multiple=True, metavar="NAME[,NAME...]", callback=_names, help=help, panel=panel)


def thread_counts_option(help: str) -> Callable:
    return option("--threads", multiple=True, metavar="N[,N...]", callback=_thread_counts, help=help)


def output_file_option(name: str, help: str) -> Callable:
    return option(name, type=PATH, metavar="FILE", callback=_writable, help=help)


# --- options several commands share -------------------------------------------------------------


def json_option(help: str = "Print the report as JSON.", panel: Optional[str] = None) -> Callable:
    return option("--json", "as_json", is_flag=True, help=help, panel=panel)


def verbose_option(panel: Optional[str] = None) -> Callable:
    return option(
        "--verbose",
        "-v",
        is_flag=True,
        help="Show TensorFlow's own log output and Python warnings.",
        panel=panel,
    )


def unsafe_load_option(help: str, panel: Optional[str] = None) -> Callable:
    return option("--unsafe-load", is_flag=True, help=help, panel=panel)


def targets_dir_option(help: str, panel: Optional[str] = None) -> Callable:
    return option("--targets-dir", type=PATH, metavar="DIR", help=help, panel=panel)


def runtime_option(help: str) -> Callable:
    return option("--runtime", metavar="NAME", help=help)


def warmup_option(help: str) -> Callable:
    return option(
        "--warmup", type=click.IntRange(min=0), default=defaults.WARMUP, show_default=True, metavar="N", help=help
    )


def budget_option(help: str) -> Callable:
    return option("--budget-ms", type=float, metavar="MS", help=help)


def trusted_key_option(help: str) -> Callable:
    return option("--trusted-key", type=PATH, metavar="FILE", help=help)


def calibration_option(help: str, required: bool = False, panel: Optional[str] = None) -> Callable:
    return option("--calibration", type=PATH, metavar="DIR|FILE", required=required, help=help, panel=panel)


def size_option(name: str, default: int, help: str, panel: Optional[str] = None) -> Callable:
    return option(
        name, type=click.IntRange(min=1), default=default, show_default=True, metavar="N", help=help, panel=panel
    )


def eval_data_option(help: str, panel: Optional[str] = None) -> Callable:
    return option("--eval-data", type=PATH, metavar="DIR|FILE", help=help, panel=panel)


def labels_option(help: str, panel: Optional[str] = None) -> Callable:
    return option("--labels", type=PATH, metavar="FILE", help=help, panel=panel)


def threshold_options(panel: Optional[str] = None, convert: bool = True) -> Callable:
    """--max-accuracy-drop, --min-agreement and --min-cosine (convert's wording, or debug's)."""
    drop = (
        "Fail (exit 4, nothing written) when a bundle loses more top-1 accuracy than this, in percentage points. "
        f"Needs labelled --eval-data. With -q auto the default is {defaults.AUTO_MAX_ACCURACY_DROP:g}."
        if convert
        else "Accuracy the int8 model may lose, in percentage points (needs labels)."
    )
    agreement = (
        "Fail (exit 4) when a classifier's top-1 answers agree with the source less often."
        if convert
        else "Minimum top-1 agreement with the source."
    )
    cosine = (
        "Fail (exit 4) when outputs' mean cosine similarity with the source is lower."
        if convert
        else "Minimum cosine similarity of outputs."
    )
    decorators = [
        option("--max-accuracy-drop", type=float, metavar="PCT", help=drop, panel=panel),
        option(
            "--min-agreement",
            type=float,
            default=defaults.MIN_AGREEMENT,
            show_default=True,
            metavar="SHARE",
            help=agreement,
            panel=panel,
        ),
        option(
            "--min-cosine",
            type=float,
            default=defaults.MIN_COSINE,
            show_default=True,
            metavar="COS",
            help=cosine,
            panel=panel,
        ),
    ]

    def apply(function: Callable) -> Callable:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply
