"""What `--on @INVENTORY` prints: one table of hosts (or a JSON list of per-host reports), a summary
line per failed host, and the worst exit code among them.

`run`, `bench` and `device info` call `fleet_command` when their `--on` names an inventory; `deploy`
renders its own results with `render_deploy`.
"""

from __future__ import annotations

from typing import Any, Callable

import click

from edgekit.cli.output import console, print_json, table

COLUMNS = ["host", "arch", "runtime", "p50 ms", "p99 ms", "within budget", "status"]


def fleet_command(command: str, on: str, limit: str | None, as_json: bool, verbose: bool, **kwargs: Any) -> None:
    """Run `command` (run, bench, info) on the inventory `on` (`@FILE`), print, and exit with the worst code."""
    from edgekit.cli.progress_bar import ProgressBar
    from edgekit.fleet import commands

    functions: dict[str, Callable[..., Any]] = {
        "run": commands.run_on_fleet,
        "bench": commands.bench_on_fleet,
        "info": commands.device_info_on_fleet,
    }
    inventory = inventory_path(on)
    with ProgressBar(f"{command} on {inventory}", enabled=not as_json) as bar:
        report = functions[command](inventory, limit=limit, progress=bar, verbose=verbose, **kwargs)
    finish(report, as_json, render_fleet)


def fleet_from_options(
    name: str, on: str, limit: str | None, ssh_config: Any, remote_python: Any, kwargs: dict
) -> None:
    """The `--on @INVENTORY` branch of `run` and `bench` (edgekit/cli/remote_options.py): the command's
    parsed options, by their Python names, go to the same library function on every host."""
    from edgekit.errors import UsageError

    options = dict(kwargs)
    as_json = bool(options.pop("as_json", False))
    for local in ("csv", "plot"):
        if options.pop(local, None) is not None:
            raise UsageError(f"--{local} writes one device's rows: use --json with --on @INVENTORY")
    if name == "bench":
        options["models"] = list(options.get("models", ()))
    fleet_command(name, on, limit, as_json, False, ssh_config=ssh_config, remote_python=remote_python, **options)


def inventory_path(on: str) -> str:
    if not on.startswith("@") or len(on) == 1:
        raise click.UsageError(f"--on {on}: an inventory is given as @FILE")
    return on[1:]


def finish(report: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    """Print the report (JSON or table), one line per host that failed, and exit with the worst code."""
    if as_json:
        print_json(report.to_dict())
    else:
        render(report)
    for host in report.hosts:
        if host.status != "ok" and host.error:
            click.echo(f"edgekit: {host.host}: {host.status}: {host.error}", err=True)
    if report.exit_code:
        raise click.exceptions.Exit(report.exit_code)


def render_fleet(report: Any) -> None:
    rows = []
    for host in report.hosts:
        names = [f"{row['name']} x{row['threads']}" for row in host.report.get("rows", ())]
        for index, cells in enumerate(_cells(report.command, host.report)):
            label = f"{host.host} {names[index]}" if report.command == "bench" and len(names) > 1 else host.host
            rows.append([label, *cells, host.status])
    out = console()
    out.print(table(None, COLUMNS, rows, right=["p50 ms", "p99 ms"]))
    out.print(_summary(report))


def render_deploy(report: Any) -> None:
    rows = []
    for host in report.hosts:
        data = host.report
        rows.append([host.host, data.get("name", "-"), data.get("version") or "-", data.get("previous") or "-",
                     data.get("path", "-"), host.status])  # fmt: skip
    out = console()
    out.print(table(None, ["host", "bundle", "current", "previous", "path", "status"], rows))
    out.print(_summary(report))


def _cells(command: str, data: dict[str, Any]) -> list[list[str]]:
    """(arch, runtime, p50, p99, within budget) for one host: one line per bench row."""
    arch = data.get("arch", "-")
    if command == "info":
        runtimes = data.get("runtimes") or {}
        runtime = ", ".join(f"{name} {version}" for name, version in runtimes.items()) or "-"
        return [[arch, runtime, "-", "-", "-"]]
    runtime = f"{data['runtime']} {data.get('runtime_version', '')}".strip() if data.get("runtime") else "-"
    if command == "bench" and data.get("rows"):
        enforced = data.get("budget_enforced")
        return [[arch, runtime, *_latency({"budget_enforced": enforced, **row})] for row in data["rows"]]
    return [[arch, runtime, *_latency(data)]]


def _latency(data: dict[str, Any]) -> list[str]:
    latency = data.get("latency_ms") or {}
    within = data.get("within_budget")
    verdict = "-" if within is None else ("yes" if within else "NO")
    if within is not None and data.get("budget_enforced") is False:
        verdict += " (emulated)"
    return [_ms(latency.get("p50")), _ms(latency.get("p99")), verdict]


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def _summary(report: Any) -> str:
    counts = {status: report.count(status) for status in ("ok", "over-budget", "check-failed", "unreachable", "failed")}
    parts = [f"{count} {status}" for status, count in counts.items() if count]
    return f"{len(report.hosts)} host(s): {', '.join(parts)}; {report.wall_s:.1f} s"
