"""`run`, `bench` and `device info` on the three-device fleet through Ansible: one device's sshd is
stopped before the run (its row is `unreachable`, the others complete, exit 5), and `--limit`."""

from __future__ import annotations

import signal

import pytest

from edgekit.errors import UsageError
from edgekit.fleet.commands import bench_on_fleet, device_info_on_fleet, run_on_fleet
from tests.remote.sshd import descendants, signal_all

ARCH = {"pi-a": "aarch64", "pi-b": "aarch64", "pi-c": "armv7l"}
RUNTIME = {"pi-a": "ai-edge-litert", "pi-b": "tflite-runtime", "pi-c": "tflite-runtime"}


def stop_listening(device) -> None:
    """Stop the device's sshd (and its sessions) but keep its keys and config: a device that is off."""
    everything = [device.process.pid, *descendants(device.process.pid)]
    signal_all(everything, signal.SIGTERM)
    device.process.wait(timeout=10)
    device.process = None


def test_limit_selects_hosts(fleet):
    report = device_info_on_fleet(fleet["inventory"], limit="pi-a:pi-c")
    assert [host.host for host in report.hosts] == ["pi-a", "pi-c"]
    assert report.exit_code == 0
    for host in report.hosts:
        assert host.status == "ok"
        assert host.report["arch"] == ARCH[host.host]
        assert RUNTIME[host.host] in host.report["runtimes"]
        assert host.report["python_path"] == str(fleet["pythons"][host.host])  # its ansible_python_interpreter
    with pytest.raises(UsageError, match="matches no host"):
        device_info_on_fleet(fleet["inventory"], limit="no-such-host")


def test_bench_on_part_of_the_fleet(fleet, digits_bundles):
    report = bench_on_fleet(fleet["inventory"], [digits_bundles["bundles"]["int8"]], limit="pi-c", repeat=3, warmup=1)
    (host,) = report.hosts
    assert (host.host, host.status, host.report["arch"]) == ("pi-c", "ok", "armv7l")
    assert host.report["rows"][0]["latency_ms"]["p50"] > 0


def test_run_with_one_device_off(fleet, digits_bundles, digits, capsys):
    """Stopping pi-b's server comes last: the module's fleet is not used after this test."""
    stop_listening(fleet["devices"]["pi-b"])
    bundle = digits_bundles["bundles"]["int8"]
    images = sorted(digits["images"].iterdir())[:2]
    report = run_on_fleet(fleet["inventory"], bundle, inputs=images, repeat=5, warmup=1)

    assert report.exit_code == 5
    by_host = {host.host: host for host in report.hosts}
    assert list(by_host) == ["pi-a", "pi-b", "pi-c"]
    assert by_host["pi-b"].status == "unreachable" and "127.0.0.62" in by_host["pi-b"].error
    answers = set()
    for name in ("pi-a", "pi-c"):
        data = by_host[name].to_dict()
        assert (data["host"], data["status"], data["arch"], data["runtime"]) == (name, "ok", ARCH[name], RUNTIME[name])
        assert data["emulated"] is True and data["latency_ms"]["p99"] > 0
        assert data["bundle"] == str(bundle)
        assert [result["input"] for result in data["results"]] == [str(p) for p in images]
        answers.add(tuple(result["top_k"][0]["index"] for result in data["results"]))
    assert len(answers) == 1  # the same answers on every device

    from edgekit.cli.fleet_output import render_fleet

    render_fleet(report)
    table = capsys.readouterr().out
    print(table)  # the fleet table, for the note
    assert "unreachable" in table and "aarch64" in table and "armv7l" in table
    assert "3 host(s): 2 ok, 1 unreachable" in table
