"""A fleet run's result: one report per host (the one-device report plus "host" and "status"), and the
worst exit code among them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from edgekit.fleet.playbook import HostOutcome

# status -> the exit code it stands for (edgekit's codes: 1 failed, 3 over budget, 4 check failed,
# 5 device unreachable); the fleet exits with the highest one.
STATUS_EXIT = {"ok": 0, "over-budget": 3, "check-failed": 4, "unreachable": 5, "failed": 1}
STATUSES = tuple(STATUS_EXIT)
_STATUS_OF_EXIT = {0: "ok", 3: "over-budget", 4: "check-failed"}


@dataclass(frozen=True)
class HostReport:
    """One host's answer: `report` is what the device's edgekit printed (empty when it printed nothing)."""

    host: str
    status: str
    report: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    exit_code: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = {**self.report, "host": self.host, "status": self.status}
        if self.error:
            data["error"] = self.error
        return data


@dataclass(frozen=True)
class FleetReport:
    """Every selected host's report, in inventory order."""

    command: str
    hosts: tuple[HostReport, ...]
    wall_s: float = 0.0

    @property
    def exit_code(self) -> int:
        return max((host.exit_code for host in self.hosts), default=0)

    def to_dict(self) -> list[dict[str, Any]]:
        return [host.to_dict() for host in self.hosts]

    def count(self, status: str) -> int:
        return sum(host.status == status for host in self.hosts)


def host_report(outcome: HostOutcome, expects_report: bool = True) -> HostReport:
    """Judge one host from what Ansible brought back: the command's exit code and its JSON."""
    if outcome.outcome == "unreachable":
        return HostReport(outcome.host, "unreachable", error=_one_line(outcome.message), exit_code=5)
    if outcome.outcome != "ok" or outcome.rc is None:
        return HostReport(outcome.host, "failed", error=_one_line(outcome.message or "failed"), exit_code=1)
    report = _json_object(outcome.stdout)
    error = _device_error(outcome.stderr) if outcome.rc != 0 else None
    status = _STATUS_OF_EXIT.get(outcome.rc, "failed")
    if outcome.rc == 5:  # the device half's own "device error" (no runtime, no Python ...): failed, exit 5
        return HostReport(outcome.host, "failed", report or {}, error or "device error", 5)
    if status == "failed":
        return HostReport(outcome.host, status, report or {}, error or f"exit {outcome.rc}", outcome.rc or 1)
    if expects_report and report is None and status != "check-failed":  # a refused bundle has no report
        return HostReport(outcome.host, "failed", {}, error or "the device printed no report", 1)
    return HostReport(outcome.host, status, report or {}, error, STATUS_EXIT[status])


def _json_object(text: str) -> dict[str, Any] | None:
    text = text.strip()
    if not text:
        return None
    try:
        data = json.loads(text[text.index("{") :] if "{" in text else text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _device_error(stderr: str) -> str | None:
    """The device's one-line error, without the `edgekit: ` every CLI message starts with."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return None
    line = lines[-1]
    return line[len("edgekit: ") :] if line.startswith("edgekit: ") else line


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "no message"
