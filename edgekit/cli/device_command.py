"""`edgekit device info HOST` and `edgekit device setup HOST`: a device over SSH, before running on it."""

from __future__ import annotations

from pathlib import Path

import click

from edgekit.cli.options import CONTEXT, PATH, Command, argument, json_option, option
from edgekit.cli.output import human_bytes, print_json, reports_errors
from edgekit.cli.remote_options import host_options


def ssh_options(function):
    return host_options(function, on=False)


@click.group("device", context_settings=CONTEXT)
def device() -> None:
    """A device over SSH: what it is (info) and what it needs to run bundles (setup)."""


@device.command("info", cls=Command)
@argument(
    "host",
    "HOST",
    "[user@]host[:port] or a name from your SSH config; @FILE: every host of an Ansible inventory.",
    type=str,
)
@option("--limit", metavar="PATTERN", help="With @INVENTORY: only the hosts matching this Ansible pattern.")
@ssh_options
@json_option("Print the facts as JSON.")
@reports_errors
def info(host: str, limit: str | None, ssh_config: Path | None, remote_python: str | None, as_json: bool) -> None:
    """Show the device's arch, CPU, cores, memory, OS, Python, TFLite runtimes and matching target."""
    if host.startswith("@"):  # an Ansible inventory: one table of hosts (edgekit/fleet)
        from edgekit.cli.fleet_output import fleet_command

        return fleet_command("info", host, limit, as_json, False, ssh_config=ssh_config, remote_python=remote_python)
    from edgekit.remote.device import device_info

    facts = device_info(host, ssh_config=ssh_config, remote_python=remote_python)
    if as_json:
        print_json(facts)
        return
    from edgekit.cli.output import console, table

    runtimes = ", ".join(f"{name} {version}" for name, version in facts["runtimes"].items()) or "none"
    features = " ".join(facts.get("cpu_features", [])[:16])
    rows = [
        ["arch", facts["arch"] + (" (emulated)" if facts.get("emulated") else "")],
        ["CPU", f"{facts['cpu']}" + (f" ({facts['board']})" if facts.get("board") else "")],
        ["features", features or "-"],
        ["cores", str(facts["cores"])],
        ["memory", human_bytes(facts.get("memory_bytes"))],
        ["OS", f"{facts['os']} (kernel {facts['kernel']}, {facts.get('glibc') or 'no glibc'})"],
        ["Python", f"{facts['python']} at {facts['python_path']}" + (" (venv)" if facts.get("venv") else "")
         + (" (externally managed)" if facts.get("externally_managed") else "")],
        ["numpy / Pillow", f"{facts.get('numpy') or 'missing'} / {facts.get('pillow') or 'missing'}"],
        ["runtimes", runtimes],
        ["target", facts.get("target") or "no matching profile"],
    ]  # fmt: skip
    console().print(table(f"device {host}", ["", "value"], rows))


@device.command("setup", cls=Command)
@argument("host", "HOST", "[user@]host[:port] or a name from your SSH config.", type=str)
@option("--wheels", type=PATH, metavar="DIR", help="Install from these .whl files (a device with no internet).")
@ssh_options
@json_option("Print the plan and the device's facts afterwards as JSON.")
@reports_errors
def setup(host: str, wheels: Path | None, ssh_config: Path | None, remote_python: str | None, as_json: bool) -> None:
    """Install numpy, Pillow and a TFLite runtime into a venv on the device with its own pip."""
    from edgekit.remote.device import device_setup

    result = device_setup(host, wheels=wheels, ssh_config=ssh_config, remote_python=remote_python)
    if as_json:
        print_json(result)
        return
    plan, facts = result["plan"], result["device"]
    for line in result["log"]:
        click.echo(line.replace("edgekit-setup: ", "  "))
    for note in plan["notes"]:
        click.echo(f"  note: {note}")
    runtimes = ", ".join(f"{n} {v}" for n, v in facts["runtimes"].items()) or "none"
    click.echo(f"{host}: ready, Python {facts['python']} in {plan['venv']} with {runtimes}; run --on {host} uses it")
