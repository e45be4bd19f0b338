"""The `edgekit` command: a thin typer app. Each subcommand lives in its own module, parses its
options, calls one library function and renders the result (a table, or JSON with --json)."""

import signal

import typer

from edgekit import __version__
from edgekit.cli import (
    bench_command,
    convert_command,
    debug_command,
    inspect_command,
    keys_command,
    output,
    run_command,
    targets_command,
)

app = typer.Typer(
    name="edgekit",
    help="Take a trained model to a Raspberry Pi, a Jetson or an x86 box, and prove it runs fast enough.\n\n"
    "Exit codes: 0 ok, 1 bad input or failure, 2 usage error, 3 over the latency budget, "
    "4 a check failed (integrity, fidelity, accuracy), 130 interrupted.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgekit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Convert models into per-target bundles, and run bundles against a latency budget."""


app.command("convert")(convert_command.convert)
app.command("run")(run_command.run)
app.command("inspect")(inspect_command.inspect)
app.command("debug")(debug_command.debug)
app.command("bench")(bench_command.bench)
app.command("verify")(keys_command.verify)
app.command("sign")(keys_command.sign)
app.command("keygen")(keys_command.keygen)
app.add_typer(targets_command.app, name="targets")


def main() -> None:
    # Ctrl-C, and the SIGTERM that systemd, docker stop and timeout send, unwind the same way: temporary
    # folders (an unpacked .tar.gz, a half-staged bundle) are removed and the exit is one line.
    signal.signal(signal.SIGINT, output.interrupt)
    signal.signal(signal.SIGTERM, output.interrupt)
    app()
