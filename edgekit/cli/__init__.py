"""The `edgekit` command: a thin click group. Each subcommand lives in its own module, parses its
options, calls one library function and renders the result (a table, or JSON with --json).

A command's module is imported only when that command runs (or for --help), so `edgekit run` on a
device loads the run path and nothing else.
"""

from __future__ import annotations

import importlib
import signal

import click

from edgekit import __version__
from edgekit.cli import output
from edgekit.cli.options import CONTEXT

# name -> (module, attribute), in the order --help lists them
COMMANDS = {
    "convert": ("edgekit.cli.convert_command", "convert"),
    "run": ("edgekit.cli.run_command", "run"),
    "inspect": ("edgekit.cli.inspect_command", "inspect"),
    "debug": ("edgekit.cli.debug_command", "debug"),
    "bench": ("edgekit.cli.bench_command", "bench"),
    "verify": ("edgekit.cli.keys_command", "verify"),
    "sign": ("edgekit.cli.keys_command", "sign"),
    "keygen": ("edgekit.cli.keys_command", "keygen"),
    "targets": ("edgekit.cli.targets_command", "targets"),
    "device": ("edgekit.cli.device_command", "device"),
    "deploy": ("edgekit.cli.deploy_command", "deploy"),
}


class Commands(click.Group):
    """A group whose commands are imported on first use."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args:  # bare `edgekit`: the help on stdout and exit 2, whatever click's version does
            click.echo(ctx.get_help())
            ctx.exit(2)
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute = COMMANDS[name]
        return getattr(importlib.import_module(module), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Each command's first sentence, whole (click would cut it to the terminal's width).
        rows = [(name, self.get_command(ctx, name).get_short_help_str(limit=200)) for name in COMMANDS]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=Commands,
    context_settings=CONTEXT,
    help="Take a trained model to a Raspberry Pi, a Jetson or an x86 box, and prove it runs fast enough.\n\n"
    "Exit codes: 0 ok, 1 bad input or failure, 2 usage error, 3 over the latency budget, "
    "4 a check failed (integrity, fidelity, accuracy), 5 a device unreachable or SSH failed (--on), 130 interrupted.",
)
@click.version_option(__version__, "--version", message="edgekit %(version)s", help="Show the version and exit.")
def cli() -> None:
    """Convert models into per-target bundles, and run bundles against a latency budget."""


def main() -> None:
    # Ctrl-C, and the SIGTERM that systemd, docker stop and timeout send, unwind the same way: temporary
    # folders (an unpacked .tar.gz, a half-staged bundle) are removed and the exit is one line.
    signal.signal(signal.SIGINT, output.interrupt)
    signal.signal(signal.SIGTERM, output.interrupt)
    output.python_warnings(verbose=False)  # commands with --verbose turn them back on
    cli()
