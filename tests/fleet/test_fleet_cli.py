"""The fleet through the command line: `device info @INVENTORY --limit`, and `run --on @INVENTORY --json`
with one device off (its row `unreachable`, the others complete, exit 5)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fleet.test_fleet_run import ARCH, stop_listening

ROOT = Path(__file__).resolve().parents[2]


def edgekit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgekit", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module", autouse=True)
def fleet_options():
    """`--on @INVENTORY` is dispatched from the one-device options (edgekit/cli/remote_options.py)."""
    from edgekit.cli.run_command import run

    if "limit" not in {param.name for param in run.params}:
        pytest.skip("run has no --limit: remote_options.py lacks the --on @INVENTORY branch")


def test_device_info_of_part_of_the_fleet(fleet):
    result = edgekit("device", "info", f"@{fleet['inventory']}", "--limit", "pi-c", "--json")
    assert result.returncode == 0, result.stderr
    (host,) = json.loads(result.stdout)
    assert (host["host"], host["status"], host["arch"]) == ("pi-c", "ok", "armv7l")


def test_run_with_one_device_off(fleet, digits_bundles):
    stop_listening(fleet["devices"]["pi-c"])
    bundle = digits_bundles["bundles"]["int8"]
    result = edgekit("run", str(bundle), "--on", f"@{fleet['inventory']}", "--repeat", "5", "--json")
    assert result.returncode == 5, result.stderr
    hosts = json.loads(result.stdout)
    assert [(h["host"], h["status"]) for h in hosts] == [("pi-a", "ok"), ("pi-b", "ok"), ("pi-c", "unreachable")]
    assert [h.get("arch") for h in hosts[:2]] == [ARCH["pi-a"], ARCH["pi-b"]]
    assert "pi-c: unreachable" in result.stderr and "\n" not in result.stderr.strip()

    table = edgekit("run", str(bundle), "--on", f"@{fleet['inventory']}", "--limit", "pi-c")
    assert table.returncode == 5
    assert "unreachable" in table.stdout and "1 host(s): 1 unreachable" in table.stdout
