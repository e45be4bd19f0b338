"""`run`, `bench` and `device info` on every device of an Ansible inventory, in parallel.

Each host gets edgekit's device half and the bundles (cached there by content), runs the same Python
API call as a local command, and sends back the same report; `FleetReport` holds one per host, with
its status, and the worst exit code.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from edgekit.bundle.files import temporary_folder
from edgekit.fleet.playbook import run_on_hosts, transport_options
from edgekit.fleet.report import FleetReport, HostReport, host_report
from edgekit.fleet.shipping import Shipment, bundle_archive, payload, scratch_files
from edgekit.progress import Progress

# A device path of a sent input, as the device's report shows it: .../run.XXXXXXXX/in<i>/...
_SENT_INPUT = re.compile(r"[^\"]*/run\.[A-Za-z0-9]+/in(\d+)(?:/([^\"]*))?")


def run_on_fleet(
    inventory: str | Path,
    bundle: str | Path,
    inputs: tuple[str | Path, ...] | list[str | Path] = (),
    limit: str | None = None,
    trusted_key: str | Path | None = None,
    save_outputs: str | Path | None = None,
    progress: Progress | None = None,
    verbose: bool = False,
    remote_python: str | None = None,
    ssh_config: str | Path | None = None,
    **options: Any,
) -> FleetReport:
    """`edgekit.run` on every selected host; `options` are `run`'s own keyword arguments (threads,
    warmup, repeat, budget_ms, top_k, runtime). `save_outputs` DIR gets each host's files in DIR/HOST.
    `remote_python` and `ssh_config` apply to hosts whose inventory does not say otherwise."""
    with temporary_folder("edgekit-fleet-") as private:
        archive = bundle_archive(Path(bundle), private)
        sent_inputs, device_inputs = _inputs([Path(p) for p in inputs])
        key = scratch_files([Path(trusted_key)], "key") if trusted_key else []
        kwargs = {"bundle": archive.device_path, "inputs": device_inputs, **_given(options)}
        if key:
            kwargs["trusted_key"] = key[0].device_path
        fetch = None
        if save_outputs is not None:
            kwargs["save_outputs"] = "{scratch}/out"
            fetch = {"folder": "out", "dest": str(Path(save_outputs).resolve() / "{{ inventory_hostname }}")}
        local_inputs = [str(p) for p in inputs]
        return _on_fleet(
            "run",
            inventory,
            limit,
            cached=[payload(), archive],
            scratch=[*sent_inputs, *key],
            argv=["run", json.dumps(kwargs)],
            transport=transport_options(progress, verbose, remote_python, ssh_config),
            rewrite=lambda report: {**_local_inputs(report, local_inputs), "bundle": str(bundle)},
            fetch=fetch,
        )


def bench_on_fleet(
    inventory: str | Path,
    models: tuple[str | Path, ...] | list[str | Path],
    limit: str | None = None,
    progress: Progress | None = None,
    verbose: bool = False,
    remote_python: str | None = None,
    ssh_config: str | Path | None = None,
    **options: Any,
) -> FleetReport:
    """`edgekit.bench` on every selected host; `options` are `bench`'s keyword arguments."""
    with temporary_folder("edgekit-fleet-") as private:
        archives = [bundle_archive(Path(model), private) for model in models]
        kwargs = {"models": [archive.device_path for archive in archives], **_given(options)}
        return _on_fleet(
            "bench",
            inventory,
            limit,
            cached=[payload(), *archives],
            scratch=[],
            argv=["bench", json.dumps(kwargs)],
            transport=transport_options(progress, verbose, remote_python, ssh_config),
        )


def device_info_on_fleet(
    inventory: str | Path,
    limit: str | None = None,
    progress: Progress | None = None,
    verbose: bool = False,
    remote_python: str | None = None,
    ssh_config: str | Path | None = None,
) -> FleetReport:
    """What every selected device is (arch, CPU, Python, runtimes): `edgekit device info` per host."""
    transport = transport_options(progress, verbose, remote_python, ssh_config)
    return _on_fleet("info", inventory, limit, [payload()], [], ["info"], transport)


def _on_fleet(
    command: str,
    inventory: str | Path,
    limit: str | None,
    cached: list[Shipment],
    scratch: list[Shipment],
    argv: list[str],
    transport: dict[str, Any],
    rewrite: Any = None,
    fetch: dict[str, str] | None = None,
) -> FleetReport:
    started = time.perf_counter()
    step: dict[str, Any] = {
        "cached": [item.to_step() for item in cached],
        "scratch": [item.to_step() for item in scratch],
        "argv": [cached[0].device_path, *argv],
    }
    if fetch is not None:
        step["fetch"] = fetch
    outcomes = run_on_hosts(Path(inventory), step, limit=limit, **transport)
    hosts = []
    for outcome in outcomes.values():
        report = host_report(outcome)
        if rewrite is not None and report.report:
            report = HostReport(report.host, report.status, rewrite(report.report), report.error, report.exit_code)
        hosts.append(report)
    return FleetReport(command, tuple(hosts), wall_s=time.perf_counter() - started)


def _given(options: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments the caller set (None means "the device's default")."""
    return {key: value for key, value in options.items() if value is not None}


def _inputs(paths: list[Path]) -> tuple[list[Shipment], list[str]]:
    """Inputs as sent files (a folder: each file in it) and as the device will name them."""
    from edgekit.errors import InputError

    sent: list[Shipment] = []
    names: list[str] = []
    for index, path in enumerate(paths):
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
            sent += [Shipment(p, f"in{index}/{p.name}", cached=False) for p in files]
            names.append(f"{{scratch}}/in{index}")
        elif path.is_file():
            sent.append(Shipment(path, f"in{index}/{path.name}", cached=False))
            names.append(f"{{scratch}}/in{index}/{path.name}")
        else:
            raise InputError(f"{path}: no such file or folder")
    return sent, names


def _local_inputs(report: dict[str, Any], local: list[str]) -> dict[str, Any]:
    """The device's paths of sent inputs back to the names given on the laptop."""

    def local_name(match: re.Match) -> str:
        index, rest = int(match.group(1)), match.group(2)
        base = local[index] if index < len(local) else match.group(0)
        return base if not rest or Path(base).name == rest else str(Path(base) / rest)

    return json.loads(_SENT_INPUT.sub(local_name, json.dumps(report)))
