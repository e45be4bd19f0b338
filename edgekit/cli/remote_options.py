"""`--on HOST`, `--ssh-config FILE` and `--remote-python PATH` for `edgekit run` and `edgekit bench`.

One decorator, placed right above the command's function (below @reports_errors):

    @reports_errors
    @remote_options
    def run(bundle, inputs, ...):

Without --on the command runs as it is. With it, every other option goes, by its Python name, to the
same library function on the device (edgekit.run / edgekit.bench): new options pass through unchanged
as long as the library takes them under the CLI's name, and file options are `Path`s (options.PATH).
The report comes back and is drawn by the command's own `render()`, so the table is the local one;
--json prints the local keys plus "host" and "cpu". Exit codes are the local ones, 5 when the device
cannot be reached or SSH fails.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any, Callable

import click

from edgekit.cli.options import PATH, option
from edgekit.errors import UsageError

PANEL = "On a device over SSH"
LOCAL_ONLY = ("as_json", "csv", "plot")  # rendered or written on the laptop from the report


def host_options(function: Callable[..., Any], on: bool = True) -> Callable[..., Any]:
    """The options alone (`on`, `ssh_config`, `remote_python` keyword arguments), for commands that
    use a device their own way (convert -q auto --on, device info/setup with on=False)."""
    decorators = [
        option("--ssh-config", type=PATH, metavar="FILE", panel=PANEL,
               help="SSH config file to use instead of ~/.ssh/config (like ssh -F)."),
        option("--remote-python", metavar="PATH", panel=PANEL,
               help="The device's Python (a venv's, say). Default: the venv `edgekit device setup` made, "
                    "else python3 of a login shell."),
    ]  # fmt: skip
    if on:
        decorators[:0] = [
            option("--on", metavar="HOST", panel=PANEL,
                   help="Run on this device over SSH: [user@]host[:port] or a name from your SSH config. "
                        "Sends edgekit's device half and the bundle once (cached there). "
                        "@INVENTORY: on every host of an Ansible inventory, in parallel."),
            option("--limit", metavar="PATTERN", panel=PANEL,
                   help="With --on @INVENTORY: only the hosts matching this Ansible pattern (as ansible --limit)."),
        ]  # fmt: skip
    for decorator in reversed(decorators):  # click lists the last applied first
        function = decorator(function)
    return function


def remote_options(command: Callable[..., Any]) -> Callable[..., Any]:
    name = command.__name__  # "run" or "bench": the library function of the same name runs on the device
    module = sys.modules[command.__module__]

    @functools.wraps(command)
    def wrapper(
        *args: Any, on: str | None, limit: str | None, ssh_config: Path | None, remote_python: str | None, **kwargs: Any
    ):
        if on is not None and on.startswith("@"):  # an Ansible inventory: every host of it (edgekit/fleet)
            from edgekit.cli.fleet_output import fleet_from_options

            return fleet_from_options(name, on, limit, ssh_config, remote_python, kwargs)
        if limit is not None:
            raise UsageError("--limit selects hosts of an inventory: use it with --on @INVENTORY")
        if on is None:
            if ssh_config is not None or remote_python is not None:
                raise UsageError("--ssh-config and --remote-python need --on HOST")
            return command(*args, **kwargs)
        return run_remote(name, module, on, ssh_config, remote_python, kwargs)

    return host_options(wrapper)


def run_remote(
    name: str, module: Any, on: str, ssh_config: Path | None, remote_python: str | None, kwargs: dict[str, Any]
) -> None:
    from edgekit.cli.output import fail, print_json
    from edgekit.remote.device import target_warning
    from edgekit.remote.remote_run import run_on
    from edgekit.remote.report_view import ReportView

    if kwargs.get("plot") is not None:
        raise UsageError("--plot needs every invoke's timing, which stays on the device: use --csv with --on")
    sent = {key: value for key, value in kwargs.items() if key not in LOCAL_ONLY}
    if name == "bench":
        sent["models"] = list(sent.get("models", ()))
    answer = run_on(on, name, sent, ssh_config=ssh_config, remote_python=remote_python)
    report, device = answer["report"], answer["device"]
    warning = target_warning(on, report, device)
    if warning:
        click.echo(f"edgekit: warning: {warning}", err=True)
    for ignored in answer.get("ignored", ()):
        if kwargs.get(ignored) not in (None, False, (), []):
            click.echo(f"edgekit: warning: {on}: the device's edgekit does not take {ignored!r}; ignored", err=True)
    if kwargs.get("csv") is not None:
        from edgekit.runtime.bench_files import write_csv

        write_csv(ReportView(report), kwargs["csv"])
    if kwargs.get("as_json"):
        print_json(report)
    else:
        click.echo(f"on {on}: {device.get('cpu')}, {device.get('os')}, Python {device.get('python')}")
        module.render(ReportView(report))
    if name == "run" and report.get("budget_enforced") and not report.get("within_budget"):
        p99 = report["latency_ms"]["p99"]
        raise fail(f"over budget on {on}: invoke p99 {p99:.3f} ms > {report['budget_ms']:g} ms", 3)
    if name == "bench" and report.get("over_budget"):
        over = [row for row in report["rows"] if row.get("within_budget") is False]
        worst = max(over, key=lambda row: row["latency_ms"]["p99"])
        raise fail(
            f"over budget on {on}: {len(over)} of {len(report['rows'])} row(s) have an invoke p99 over "
            f"{report['budget_ms']:g} ms (worst {worst['name']} x{worst['threads']}: {worst['latency_ms']['p99']:.3f} ms)",
            3,
        )
