"""One edgekit step on every host of an Ansible inventory, in parallel: a generated playbook run by the
ansible-core installed next to edgekit (the `fleet` extra), in a separate process with a private folder
for everything it writes, its log noise kept off the terminal (shown with --verbose).

Ansible is never imported into edgekit's process: importing it rewires sys.stdout and sys.stderr.
The user's ansible.cfg (found the usual way) still applies: forks, timeouts, bastions, vault.
"""

from __future__ import annotations

import importlib.util
import json
import locale
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import InputError, UsageError
from edgekit.progress import Progress, report

PLUGINS = Path(__file__).resolve().parent / "ansible_plugins"
INSTALL_HINT = "install edgekit's fleet extra: pip install '.[fleet]' from edgekit's repository, or make install"


def require_ansible() -> None:
    """Refuse (exit 2) with what to install when ansible-core is missing."""
    if importlib.util.find_spec("ansible") is None:
        raise UsageError(f"fleets (--on @INVENTORY) run through Ansible, which is not installed: {INSTALL_HINT}")


def ansible_environment(private: Path, events: Path | None = None) -> dict[str, str]:
    """The environment for ansible-* commands: edgekit's plugins, a private temporary folder, no retry
    files or colours, and a UTF-8 locale (Ansible refuses to start without one). SSH's control sockets
    stay where Ansible keeps them (~/.ansible/cp), so a second run within ControlPersist reuses them."""
    env = dict(os.environ)
    env.update(
        ANSIBLE_ACTION_PLUGINS=str(PLUGINS / "action"),
        ANSIBLE_CALLBACK_PLUGINS=str(PLUGINS / "callback"),
        ANSIBLE_STDOUT_CALLBACK="edgekit_events",
        ANSIBLE_LOAD_CALLBACK_PLUGINS="true",
        ANSIBLE_LOCAL_TEMP=str(private / "tmp"),
        ANSIBLE_RETRY_FILES_ENABLED="false",
        ANSIBLE_NOCOLOR="true",
        ANSIBLE_FORCE_COLOR="false",
        ANSIBLE_DEPRECATION_WARNINGS="false",
        ANSIBLE_INVENTORY_UNPARSED_FAILED="true",
        ANSIBLE_GATHERING="explicit",
    )
    if events is not None:
        env["EDGEKIT_FLEET_EVENTS"] = str(events)
    if "utf" not in (locale.getpreferredencoding(False) or "").lower().replace("-", ""):
        env["LC_ALL"] = "C.UTF-8"
    return env


def ansible_command(entry_point: str, *args: str) -> list[str]:
    """`python -m ansible playbook ...`: the ansible-core installed next to edgekit, whatever PATH says."""
    return [sys.executable, "-m", "ansible", entry_point, *args]


def inventory_hosts(inventory: Path, limit: str | None, private: Path) -> dict[str, dict]:
    """The hosts of `inventory` that `limit` selects, in inventory order, with their variables."""
    require_ansible()
    if not inventory.exists():
        raise InputError(f"{inventory}: no such inventory file")
    command = ansible_command("inventory", "-i", str(inventory), "--list")
    if limit:
        command += ["--limit", limit]
    done = subprocess.run(
        command, capture_output=True, text=True, env=ansible_environment(private), stdin=subprocess.DEVNULL
    )
    if done.returncode != 0:
        raise InputError(f"{inventory}: not an inventory Ansible can read: {_ansible_message(done.stderr)}")
    listing = json.loads(done.stdout)
    hostvars = listing.get("_meta", {}).get("hostvars", {})
    ordered = _hosts_in_order(listing, "all", set())
    hosts = {name: hostvars.get(name, {}) for name in ordered if name in hostvars or not limit}
    if not hosts:
        if limit:
            raise UsageError(f"--limit {limit}: matches no host of {inventory}")
        raise InputError(f"{inventory}: lists no hosts")
    return hosts


def _hosts_in_order(listing: dict, group: str, seen: set[str]) -> list[str]:
    entry = listing.get(group, {})
    names = [host for host in entry.get("hosts", []) if host not in seen]
    seen.update(names)
    for child in entry.get("children", []):
        names += _hosts_in_order(listing, child, seen)
    return names


def _ansible_message(stderr: str) -> str:
    """Ansible's error as one line: its first ERROR or WARNING sentence."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("ERROR", "[ERROR]", "[WARNING]")):
            return line.split(":", 1)[-1].strip()
    return lines[0] if lines else "no message"


@dataclass(frozen=True)
class HostOutcome:
    """What Ansible said of one host: `outcome` is "ok" (the command ran: see `rc`), "failed" (edgekit's
    step failed before or around the command) or "unreachable"."""

    host: str
    outcome: str
    rc: int | None = None
    stdout: str = ""
    stderr: str = ""
    message: str = ""
    sent: tuple[str, ...] = ()


def run_on_hosts(
    inventory: Path,
    step: dict[str, Any],
    limit: str | None = None,
    progress: Progress | None = None,
    verbose: bool = False,
    remote_python: str | None = None,
    ssh_config: Path | None = None,
) -> dict[str, HostOutcome]:
    """Run one `edgekit_device` step (see its plugin) on every selected host, in parallel (Ansible's
    forks), and return each host's outcome; a host that fails never stops the others. `remote_python`
    and `ssh_config` (ssh -F) apply to hosts whose inventory sets no interpreter or SSH arguments."""
    from edgekit.bundle.files import temporary_folder

    inventory = Path(inventory).resolve() if Path(inventory).exists() else Path(inventory)
    fallback = json.dumps(remote_python or "python3")  # a JSON string is a Jinja string literal
    interpreter = "{{ ansible_python_interpreter | default(" + fallback + ") }}"
    with temporary_folder("edgekit-fleet-") as private:
        hosts = inventory_hosts(inventory, limit, private)
        play = [
            {
                "name": "edgekit",
                "hosts": "all",
                "gather_facts": False,
                "tasks": [{"name": "edgekit", "edgekit_device": {"interpreter": interpreter, **step}}],
            }
        ]
        playbook = private / "playbook.yml"
        playbook.write_text(json.dumps(play), encoding="utf-8")  # JSON is YAML
        events = private / "events.jsonl"
        command = ansible_command("playbook", "-i", str(inventory), str(playbook))
        if limit:
            command += ["--limit", limit]
        if ssh_config is not None:
            command.append(f"--ssh-common-args=-F {shlex.quote(str(Path(ssh_config).resolve()))}")
        if verbose:
            command.append("-v")
        stderr_path = private / "stderr.txt"
        report(progress, "devices", 0, len(hosts))
        with open(stderr_path, "w", encoding="utf-8") as stderr:
            process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=None if verbose else stderr,
                stdin=subprocess.DEVNULL,
                text=True,
                env=ansible_environment(private, events),
            )
            try:
                done = 0
                for line in process.stdout:
                    if line.startswith("done "):
                        done += 1
                        report(progress, "devices", done, len(hosts))
                process.wait()
            except BaseException:
                process.terminate()  # Ansible stops its forks and closes its connections itself
                process.wait()
                raise
        outcomes = _read_events(events)
        message = _ansible_message(stderr_path.read_text(encoding="utf-8")) if not verbose else "see above"
    for host in hosts:  # a host Ansible never reported on (it stopped early): failed, saying why
        outcomes.setdefault(host, HostOutcome(host, "failed", message=f"no result from Ansible ({message})"))
    return {host: outcomes[host] for host in hosts}


def transport_options(
    progress: Progress | None, verbose: bool, remote_python: str | None, ssh_config: str | os.PathLike[str] | None
) -> dict[str, Any]:
    """`run_on_hosts`'s keyword arguments for how hosts are reached and how the run is shown."""
    ssh = Path(ssh_config) if ssh_config is not None else None
    return {"progress": progress, "verbose": verbose, "remote_python": remote_python, "ssh_config": ssh}


def _read_events(events: Path) -> dict[str, HostOutcome]:
    outcomes: dict[str, HostOutcome] = {}
    if not events.exists():
        return outcomes
    for line in events.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        message = event.get("msg") or ""
        outcomes[event["host"]] = HostOutcome(
            host=event["host"],
            outcome=event["outcome"],
            rc=event.get("rc"),
            stdout=event.get("stdout") or "",
            stderr=event.get("stderr") or "",
            message=" ".join(message) if isinstance(message, list) else str(message),
            sent=tuple(event.get("sent") or ()),
        )
    return outcomes
