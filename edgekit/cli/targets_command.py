"""`edgekit targets`: the device profiles edgekit knows."""

from __future__ import annotations

from pathlib import Path

import click

from edgekit.cli.options import CONTEXT, Command, argument, json_option, targets_dir_option
from edgekit.cli.output import console, print_json, reports_errors, table

TARGETS_DIR_HELP = "Folder with your own profiles (*.toml); they add to, and override, the built-in ones."


class TargetsGroup(click.Group):
    """`targets` lists the profiles; `targets show NAME` shows one. Help as the other commands'."""

    default_panel = "Options"

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        Command.format_options(self, ctx, formatter)  # type: ignore[arg-type]
        self.format_commands(ctx, formatter)


@click.group("targets", cls=TargetsGroup, invoke_without_command=True, context_settings=CONTEXT)
@targets_dir_option(TARGETS_DIR_HELP)
@json_option("Print as JSON.")
@click.pass_context
@reports_errors
def targets(ctx: click.Context, targets_dir: Path | None, as_json: bool) -> None:
    """List device profiles, or show one."""
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


@targets.command("show", cls=Command)
@argument("name", "NAME", "Target name, e.g. rpi4.", type=str)
@targets_dir_option(TARGETS_DIR_HELP)
@json_option("Print as JSON.")
@click.pass_context
@reports_errors
def show(ctx: click.Context, name: str, targets_dir: Path | None, as_json: bool) -> None:
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
