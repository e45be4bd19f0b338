"""`edgekit run/bench --on HOST` really crossing SSH into an emulated aarch64 or armv7 userland: the
report says where it ran, the answers are the local x86 ones, and the second run reuses what the first
sent."""

from __future__ import annotations

import csv
import json
import os
import time

import pytest

import edgekit
from tests.conftest import ROOT
from tests.remote.conftest import edgekit as edgekit_cli
from tests.remote.conftest import on
from tests.remote.devices import device_python, require_arm
from tests.remote.sshd import Sshd

pytestmark = pytest.mark.arm

LSB = 1 / 256 + 1e-6  # int8 outputs: ARM and x86 kernels may round one step apart


def same_answers(remote: dict, local: dict) -> None:
    assert [r["input"] for r in remote["results"]] == [r["input"] for r in local["results"]]
    for mine, theirs in zip(remote["results"], local["results"]):
        assert mine["top_k"][0]["index"] == theirs["top_k"][0]["index"], mine["input"]
        for a, b in zip(mine["top_k"], theirs["top_k"]):
            if a["index"] == b["index"]:
                assert abs(a["score"] - b["score"]) <= LSB


def leftovers(device) -> list[str]:
    """What a run may leave on the device besides the caches: per-run folders, temporary uploads."""
    cache = device.home / ".cache" / "edgekit"
    found = [p.name for p in (cache / "runs").glob("*")] if (cache / "runs").is_dir() else []
    found += [p.name for p in cache.glob(".agent-*")]
    found += [p.name for p in (cache / "bundles").glob(".incoming-*")] if (cache / "bundles").is_dir() else []
    return found


def test_run_on_arm64_matches_the_local_run(arm64_device, arm_bundles, laptop):
    bundle, images = arm_bundles["rpi4"], arm_bundles["images"]
    result = edgekit_cli("run", bundle, images, "--repeat", "5", *on(arm64_device), "--json", env=laptop)
    assert result.returncode == 0, result.stderr
    remote = json.loads(result.stdout)
    assert remote["arch"] == "aarch64" and remote["emulated"] is True
    assert remote["host"] == arm64_device.name and remote["cpu"] == "cortex-a72"
    assert remote["runtime"] == "ai-edge-litert" and remote["target"] == "rpi4"
    assert remote["bundle"] == str(bundle)
    local = edgekit.run(bundle, [images], repeat=5).to_dict()
    assert set(local) | {"host", "cpu"} == set(remote)
    same_answers(remote, local)
    assert result.stderr == ""  # a matching target: no warning
    assert leftovers(arm64_device) == []


def test_second_run_reuses_the_cached_agent_and_bundle(arm64_device, arm_bundles, laptop):
    bundle = arm_bundles["rpi4"]
    first = edgekit_cli("run", bundle, "--repeat", "3", *on(arm64_device), "--json", env=laptop)
    assert first.returncode == 0, first.stderr
    store = arm64_device.home / ".cache" / "edgekit" / "bundles"
    cached = sorted(p.name for p in store.iterdir())
    stamps = {p: p.stat().st_mtime_ns for p in store.iterdir()}
    start = time.monotonic()
    second = edgekit_cli("run", bundle, "--repeat", "3", *on(arm64_device), "--json", env=laptop)
    assert second.returncode == 0, second.stderr
    assert time.monotonic() - start < 60
    assert sorted(p.name for p in store.iterdir()) == cached  # nothing sent again
    assert {p: p.stat().st_mtime_ns for p in store.iterdir()} == stamps
    assert len([p for p in (store.parent).glob("agent-*")]) == 1


def test_run_on_armv7_with_tflite_runtime(armv7_device, arm_bundles, laptop):
    bundle, images = arm_bundles["rpi-armv7"], arm_bundles["images"]
    image = images / "digit-7.png"
    result = edgekit_cli("run", bundle, image, "--repeat", "3", *on(armv7_device), "--json", env=laptop)
    assert result.returncode == 0, result.stderr
    remote = json.loads(result.stdout)
    assert remote["arch"] == "armv7l" and remote["emulated"] is True
    assert remote["runtime"] == "tflite-runtime" and remote["cpu"] == "cortex-a7"
    assert remote["results"][0]["input"] == str(images / "digit-7.png")
    same_answers(remote, edgekit.run(bundle, [images / "digit-7.png"], repeat=3).to_dict())
    assert leftovers(armv7_device) == []


def test_run_table_is_the_local_table_with_the_host(arm64_device, arm_bundles, laptop):
    result = edgekit_cli("run", arm_bundles["rpi4"], "--repeat", "3", *on(arm64_device), env=laptop)
    assert result.returncode == 0, result.stderr
    assert f"on {arm64_device.name}: cortex-a72" in result.stdout
    assert "digits (int8, target rpi4) on aarch64 (emulated): ai-edge-litert" in result.stdout
    assert "latency (ms) over 3 runs" in result.stdout and "emulated: not enforced" in result.stdout


def test_bench_on_device_with_an_archive_and_csv(arm64_device, arm_bundles, laptop, tmp_path):
    out = tmp_path / "rows.csv"
    result = edgekit_cli(
        "bench", arm_bundles["rpi4-archive"], "--threads", "1,2", "--repeat", "3", "--csv", out,
        *on(arm64_device), "--json", env=laptop,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["arch"] == "aarch64" and report["host"] == arm64_device.name
    archive = str(arm_bundles["rpi4-archive"])
    assert [(r["model"], r["threads"]) for r in report["rows"]] == [(archive, 1), (archive, 2)]
    with open(out, newline="") as handle:
        assert [row["threads"] for row in csv.DictReader(handle)] == ["1", "2"]
    assert "--plot" in edgekit_cli("bench", arm_bundles["rpi4"], "--plot", tmp_path / "p.png", *on(arm64_device)).stderr


def test_target_mismatch_warns(arm64_device, arm_bundles, laptop):
    result = edgekit_cli("run", arm_bundles["rpi-armv7"], "--repeat", "2", *on(arm64_device), env=laptop)
    assert result.returncode == 0, result.stderr
    assert "warning" in result.stderr and "made for rpi-armv7 (armv7l), the device is aarch64" in result.stderr


def test_device_info_names_the_matching_target(arm64_device, armv7_device, laptop):
    for device, arch, target, runtime in (
        (arm64_device, "aarch64", "rpi4", "ai-edge-litert"),
        (armv7_device, "armv7l", "rpi-armv7", "tflite-runtime"),
    ):
        result = edgekit_cli("device", "info", device.name, "--ssh-config", device.ssh_config, "--json", env=laptop)
        assert result.returncode == 0, result.stderr
        facts = json.loads(result.stdout)
        assert (facts["arch"], facts["target"], facts["emulated"]) == (arch, target, True)
        assert runtime in facts["runtimes"] and facts["python"].startswith("3.11")
        assert facts["externally_managed"] is True  # Debian 12's python3, as on Pi OS Bookworm
    table = edgekit_cli("device", "info", arm64_device.name, "--ssh-config", arm64_device.ssh_config, env=laptop)
    assert table.returncode == 0 and "rpi4" in table.stdout and "cortex-a72" in table.stdout


def test_save_outputs_come_back(arm64_device, arm_bundles, laptop, tmp_path):
    import inspect

    from edgekit.runtime.session import run

    if "save_outputs" not in inspect.signature(run).parameters:
        pytest.skip("the device half has no save_outputs yet (runtime-io, issue 11)")
    out = tmp_path / "outputs"
    image = arm_bundles["images"] / "digit-3.png"
    result = edgekit_cli(
        "run", arm_bundles["rpi4"], image, "--save-outputs", out, *on(arm64_device), "--json", env=laptop
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) and all(p.suffix == ".npy" for p in out.iterdir())


def test_device_setup_on_an_externally_managed_debian_12(arm_bundles, laptop, tmp_path_factory, tmp_path):
    """`device setup` on Debian 12 arm64's bare python3 (externally managed, no numpy, no python3-venv):
    a venv with pip bootstrapped from the uploaded wheels, ai-edge-litert, numpy and Pillow in it; then
    `run --on` uses that venv by itself."""
    wheels = ROOT / ".arm" / "wheels-arm64"
    require_arm("arm64-bare")
    if not any(wheels.glob("ai_edge_litert-*.whl")):
        message = f"{wheels}: no wheels; run `make device-wheels`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    python = device_python("arm64-bare", tmp_path)
    # pip's bytecode compilation under QEMU takes minutes and proves nothing here
    with Sshd("127.0.0.10", python=python, name="bare-debian", profile="export PIP_NO_COMPILE=1\n") as device:
        before = edgekit_cli("device", "info", *on(device)[1:], "--json", env=laptop)
        assert before.returncode == 0, before.stderr
        facts = json.loads(before.stdout)
        assert facts["externally_managed"] is True and facts["numpy"] is None and facts["runtimes"] == {}
        setup = edgekit_cli("device", "setup", *on(device)[1:], "--wheels", wheels, "--json", env=laptop)
        assert setup.returncode == 0, setup.stderr
        result = json.loads(setup.stdout)
        assert result["plan"]["venv"] == "~/.local/share/edgekit/venv"
        assert "ai-edge-litert" in result["device"]["runtimes"]
        run = edgekit_cli("run", arm_bundles["rpi4"], "--repeat", "2", *on(device), "--json", env=laptop)
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["runtime"] == "ai-edge-litert"


def test_candidate_modes_timed_on_the_device(arm64_device, arm_bundles, digits, laptop, tmp_path, monkeypatch):
    """What `convert -q auto --on HOST` calls: every mode's latency measured on the device, keyed as
    selection.measure_latencies keys the laptop's."""
    from edgekit.conversion.pipeline import convert
    from edgekit.remote.device_timing import latencies_on_device, time_on_device

    for name, value in laptop.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "float32"
    convert(digits["model"], targets=["rpi4"], quantization="float32", labels=digits["labels"], out=out)
    models = {"int8": arm_bundles["rpi4"], "float32": out / "digits-rpi4"}
    config = str(arm64_device.ssh_config)
    latencies = latencies_on_device(arm64_device.name, models, [1, 2], ssh_config=config, repeat=5)
    assert sorted(latencies) == [("float32", 1), ("float32", 2), ("int8", 1), ("int8", 2)]
    assert all(stats.count == 5 and stats.p50 > 0 for stats in latencies.values())
    p50 = time_on_device(arm64_device.name, {"int8": models["int8"]}, 1, ssh_config=config)
    assert list(p50) == ["int8"] and p50["int8"] > 0


def test_convert_auto_times_the_modes_on_the_device(arm64_device, digits, laptop, tmp_path):
    """`convert -q auto --on HOST`: the candidate table's latencies come from the device (at the
    target's thread count), the device is named in the progress, and the host stays out of the recipe."""
    out = tmp_path / "auto"
    result = edgekit_cli(
        "convert", digits["model"], "-t", "rpi4", "-q", "auto", "--calibration", digits["calibration"],
        "--labels", digits["labels"], "--out", out, "--json", *on(arm64_device), env=laptop,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    (bundle,) = report["bundles"]
    timed = [row for row in bundle["candidates"] if row["p50_ms"] is not None]
    assert timed and all(row["threads"] == 4 for row in timed)  # rpi4's 4 threads, not this machine's 2
    manifest = json.loads((out / "digits-rpi4" / "edgekit.json").read_text())
    assert "on" not in manifest["conversion"]["recipe"] and "ssh_config" not in manifest["conversion"]["recipe"]
