"""`edgekit targets`: the device profiles edgekit knows."""

from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.output import console, print_json, reports_errors, table

app = typer.Typer(help="List device profiles, or show one.", invoke_without_command=True, no_args_is_help=False)

TARGETS_DIR_HELP = "Folder with your own profiles (*.toml); they add to, and override, the built-in ones."


@app.callback()
@reports_errors
def list_command(
    ctx: typer.Context,
    targets_dir: Optional[Path] = typer.Option(None, "--targets-dir", help=TARGETS_DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """List every target profile."""
    if ctx.invoked_subcommand is not None:  # `targets --json show NAME`: the options hold for `show` too
        ctx.obj = {"targets_dir": targets_dir, "json": as_json}
        return
    from edgekit.targets import list_targets

    targets = list_targets(targets_dir)
    if as_json:
        print_json([t.to_dict() for t in targets])
        return
    rows = [
        [
            t.name,
            t.arch,
            t.cpu,
            f"{t.threads}/{t.cores}",
            t.quantization,
            f"{t.budget_ms:g}",
            t.runtime_requirement,
            t.description,
        ]
        for t in targets
    ]
    console().print(
        table(
            None,
            ["name", "arch", "cpu", "threads", "mode", "budget ms", "runtime", "description"],
            rows,
            right=("threads", "budget ms"),
        )
    )


@app.command("show")
@reports_errors
def show(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Target name, e.g. rpi4.", show_default=False),
    targets_dir: Optional[Path] = typer.Option(None, "--targets-dir", help=TARGETS_DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Show one target profile."""
    from edgekit.targets import get_target

    given = ctx.obj or {}
    targets_dir = targets_dir or given.get("targets_dir")
    as_json = as_json or given.get("json", False)
    target = get_target(name, targets_dir)
    if as_json:
        print_json(target.to_dict())
        return
    rows = [[key, ", ".join(value) if isinstance(value, list) else value] for key, value in target.to_dict().items()]
    console().print(table(f"{target.name} ({target.source})", ["field", "value"], rows))
