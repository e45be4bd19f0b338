"""Per-host statuses and the worst exit code, from what Ansible brings back (no devices needed)."""

from __future__ import annotations

import json

import pytest

from edgekit.errors import UsageError
from edgekit.fleet.deploy import SINGLE_HOST, target_inventory
from edgekit.fleet.playbook import HostOutcome
from edgekit.fleet.report import FleetReport, host_report

REPORT = json.dumps({"arch": "aarch64", "runtime": "tflite-runtime", "latency_ms": {"p50": 1.0, "p99": 2.0}})


@pytest.mark.parametrize(
    ("outcome", "status", "code"),
    [
        (HostOutcome("a", "ok", 0, REPORT), "ok", 0),
        (HostOutcome("a", "ok", 3, REPORT, "edgekit: error: over budget"), "over-budget", 3),
        (HostOutcome("a", "ok", 4, "", "edgekit: error: x/labels.txt: does not match"), "check-failed", 4),
        (HostOutcome("a", "unreachable", message="Failed to connect to the host via ssh"), "unreachable", 5),
        (HostOutcome("a", "failed", message="Action failed: no space"), "failed", 1),
        (HostOutcome("a", "ok", 5, "", "edgekit: error: no TFLite runtime"), "failed", 5),
        (HostOutcome("a", "ok", 1, "", "edgekit: error: bad input"), "failed", 1),
        (HostOutcome("a", "ok", 0, "not json"), "failed", 1),
    ],
)
def test_status_and_exit_code(outcome, status, code):
    report = host_report(outcome)
    assert (report.status, report.exit_code) == (status, code)
    data = report.to_dict()
    assert (data["host"], data["status"]) == ("a", status)
    if status != "ok":
        assert data["error"] and not data["error"].startswith("edgekit:")


def test_the_fleet_exits_with_the_worst_code():
    hosts = [
        host_report(HostOutcome("a", "ok", 0, REPORT)),
        host_report(HostOutcome("b", "ok", 3, REPORT)),
        host_report(HostOutcome("c", "unreachable", message="refused")),
    ]
    report = FleetReport("run", tuple(hosts))
    assert report.exit_code == 5
    assert [h["host"] for h in report.to_dict()] == ["a", "b", "c"]
    assert report.to_dict()[0]["arch"] == "aarch64"
    assert FleetReport("run", tuple(hosts[:2])).exit_code == 3


def test_one_host_becomes_a_one_host_inventory(tmp_path):
    line = target_inventory("pi@127.0.0.5:2222", None, tmp_path).read_text().split()
    assert line == [SINGLE_HOST, "ansible_host=127.0.0.5", "ansible_port=2222", "ansible_user=pi"]
    assert target_inventory("@site.ini", None, tmp_path).name == "site.ini"
    with pytest.raises(UsageError):
        target_inventory("pi4", "lab", tmp_path)  # --limit without an inventory
    with pytest.raises(UsageError):
        target_inventory("pi@host:ssh", None, tmp_path)
