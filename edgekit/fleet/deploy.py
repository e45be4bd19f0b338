"""`edgekit deploy`: install a bundle on one device or a fleet, verified there before it becomes current,
and roll back to the previous one. The device side is `deploy_agent.py`, run with edgekit's device
half (the payload) on its path; one device (`HOST`) goes through Ansible like a fleet, as a one-host
inventory, so both take the same path.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgekit.bundle.files import temporary_folder
from edgekit.errors import UsageError
from edgekit.fleet.playbook import run_on_hosts, transport_options
from edgekit.fleet.report import FleetReport, host_report
from edgekit.fleet.shipping import Shipment, bundle_archive, payload, scratch_files
from edgekit.progress import Progress

AGENT = Path(__file__).resolve().parent / "deploy_agent.py"
DEFAULT_BUNDLES = "~/.local/share/edgekit/bundles"
SINGLE_HOST = "device"  # the inventory name of `--on HOST`; reports show HOST as the user wrote it


def deploy(
    bundle: str | Path,
    on: str,
    to: str | None = None,
    trusted_key: str | Path | None = None,
    limit: str | None = None,
    progress: Progress | None = None,
    verbose: bool = False,
    ssh_config: str | Path | None = None,
    remote_python: str | None = None,
) -> FleetReport:
    """Install `bundle` at TO/NAME/current (default ~/.local/share/edgekit/bundles) on every device of
    `on` (`HOST` or `@INVENTORY`), verified (and signature-checked with `trusted_key`) on the device
    before the switch; the version it replaces stays as NAME/previous."""
    from edgekit.bundle.reader import open_bundle

    with open_bundle(bundle, trusted_key=trusted_key):  # refuse a broken bundle before sending it anywhere
        pass
    with temporary_folder("edgekit-fleet-") as private:
        archive = bundle_archive(Path(bundle), private)
        version = archive.name[len("bundle-") :][:16]
        key = scratch_files([Path(trusted_key)], "key") if trusted_key else []
        argv = ["install", archive.device_path, version, *_to(to)]
        if key:
            argv += ["--trusted-key", key[0].device_path]
        transport = transport_options(progress, verbose, remote_python, ssh_config)
        return _deploy_step("deploy", on, limit, [archive], key, argv, private, transport)


def rollback(
    name: str,
    on: str,
    to: str | None = None,
    limit: str | None = None,
    progress: Progress | None = None,
    verbose: bool = False,
    ssh_config: str | Path | None = None,
    remote_python: str | None = None,
) -> FleetReport:
    """Make the previous version of bundle NAME current again on every device of `on`."""
    with temporary_folder("edgekit-fleet-") as private:
        transport = transport_options(progress, verbose, remote_python, ssh_config)
        return _deploy_step("rollback", on, limit, [], [], ["rollback", name, *_to(to)], private, transport)


def _deploy_step(
    command: str,
    on: str,
    limit: str | None,
    cached: list[Shipment],
    scratch: list[Shipment],
    argv: list[str],
    private: Path,
    transport: dict[str, Any],
) -> FleetReport:
    started = time.perf_counter()
    inventory = target_inventory(on, limit, private)
    agent = Shipment(AGENT, f"deploy-agent-{_digest(AGENT)}.py", cached=True)
    code = payload()
    step: dict[str, Any] = {
        "cached": [item.to_step() for item in (code, agent, *cached)],
        "scratch": [item.to_step() for item in scratch],
        "argv": [agent.device_path, code.device_path, *argv],
    }
    outcomes = run_on_hosts(inventory, step, limit=limit, **transport)
    hosts = tuple(host_report(outcome) for outcome in outcomes.values())
    if not on.startswith("@"):
        hosts = tuple(replace(host, host=on) for host in hosts)
    return FleetReport(command, hosts, wall_s=time.perf_counter() - started)


def target_inventory(on: str, limit: str | None, private: Path) -> Path:
    """`@INVENTORY` as it is; `[user@]host[:port]` (or a name from the SSH config) as a one-host
    inventory, so the user's OpenSSH settings apply as they do for `ssh HOST`."""
    if on.startswith("@"):
        if len(on) == 1:
            raise UsageError("--on @: give the inventory file after the @")
        return Path(on[1:])
    if limit:
        raise UsageError("--limit selects hosts of an inventory: use it with --on @INVENTORY")
    user, _, rest = on.rpartition("@")
    host, port = rest, None
    if rest.count(":") == 1:
        host, port = rest.split(":")
        if not port.isdigit():
            raise UsageError(f"--on {on}: the port must be a number")
    if not host or any(c.isspace() for c in on) or host.startswith("-"):
        raise UsageError(f"--on {on}: not [user@]host[:port]")
    line = [SINGLE_HOST, f"ansible_host={host}"]
    if port:
        line.append(f"ansible_port={port}")
    if user:
        line.append(f"ansible_user={user}")
    inventory = private / "device.ini"
    inventory.write_text(" ".join(line) + "\n", encoding="utf-8")
    return inventory


def _to(to: str | None) -> list[str]:
    return ["--to", to] if to else []


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
