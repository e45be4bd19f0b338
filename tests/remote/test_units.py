"""The remote pieces that need no SSH: host names, ssh's messages, the payload, the agent's bundle
install, the device-family plans and target matching, the tflite-runtime/numpy 2 refusal."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from edgekit.errors import DeviceError, IntegrityError, RuntimeNotFound, UsageError
from edgekit.remote import agent, framing
from edgekit.remote.device import match_target, setup_plan, target_warning
from edgekit.remote.payload import device_files, payload_id, payload_path
from edgekit.remote.report_view import ReportView
from edgekit.remote.ssh import Host, failure, parse_host
from tests.conftest import ROOT


@pytest.mark.parametrize(
    "text, host",
    [
        ("pi@raspberrypi.local", Host("pi@raspberrypi.local", "raspberrypi.local", "pi", None)),
        ("jetson", Host("jetson", "jetson", None, None)),
        ("root@127.0.0.2:2222", Host("root@127.0.0.2:2222", "127.0.0.2", "root", 2222)),
        ("[::1]:22", Host("[::1]:22", "::1", None, 22)),
        ("fe80::1", Host("fe80::1", "fe80::1", None, None)),
    ],
)
def test_parse_host(text, host):
    assert parse_host(text) == host


@pytest.mark.parametrize("text", ["", "-oProxyCommand=x", "pi@-x", "a b", "host:port", "h:70000", "a;b", "$(x)"])
def test_parse_host_refuses_what_could_be_an_option_or_shell(text):
    with pytest.raises(UsageError):
        parse_host(text)


@pytest.mark.parametrize(
    "stderr, cause",
    [
        ("ssh: Could not resolve hostname pi: Name or service not known", "unknown host"),
        ("ssh: connect to host 127.0.0.5 port 22: Connection refused", "connection refused"),
        ("root@127.0.0.2: Permission denied (publickey).", "authentication failed"),
        ("@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\nHost key verification failed.",
         "host key mismatch"),
        ("No ED25519 host key is known for pi and you have requested strict checking.\nHost key verification failed.",
         "host key not known"),
        ("ssh: connect to host 127.0.0.9 port 22: Connection timed out", "connection timed out"),
        ("Connection to 127.0.0.2 closed by remote host.", "the connection dropped"),
        ("something new", "ssh failed (something new)"),
    ],
)  # fmt: skip
def test_ssh_failures_are_one_line_with_the_cause(stderr, cause):
    error = failure(parse_host("pi"), stderr, 255)
    assert isinstance(error, DeviceError) and error.exit_code == 5
    assert str(error).startswith("pi: " + cause) and "\n" not in str(error)


def test_payload_is_the_device_half_only_and_cached():
    names = [name for name, _ in device_files()]
    assert "edgekit/remote/agent.py" in names and "edgekit/runtime/session.py" in names
    assert not [n for n in names if n.startswith(("edgekit/cli/", "edgekit/conversion/", "edgekit/fleet/"))]
    assert not [n for n in names if n.split("/")[-1] in ("ssh.py", "payload.py", "remote_run.py", "device.py")]
    first = payload_path()
    assert payload_path() == first and payload_id() in first.name
    with zipfile.ZipFile(first) as archive:
        assert "__main__.py" in archive.namelist() and "edgekit/__main__.py" not in archive.namelist()


def test_payload_runs_a_bundle_without_the_cli_or_tensorflow(digits_bundles, tmp_path):
    """`python3 PAYLOAD.zip run BUNDLE` prints the report JSON, importing no click, rich or TensorFlow."""
    probe = (
        "import json, runpy, sys\n"
        f"sys.argv = ['payload', 'run', {str(digits_bundles['bundles']['int8'])!r}]\n"
        "try:\n"
        f"    runpy.run_path({str(payload_path())!r}, run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'click', 'rich', 'tensorflow', 'keras'})\n"
        "sys.stderr.write(json.dumps({'code': code, 'heavy': heavy}))\n"
    )
    result = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    status = json.loads(result.stderr.strip().splitlines()[-1])
    assert status == {"code": 0, "heavy": []}, result.stderr
    report = json.loads(result.stdout)
    assert report["quantization"] == "int8" and report["results"][0]["input"] == "<zeros>"


def test_a_corrupt_or_foreign_upload_is_never_installed(digits_bundles, tmp_path):
    from edgekit.bundle import sha256_file
    from edgekit.bundle.archive import pack_archive
    from edgekit.remote.remote_run import Upload, pack_folder

    bundle = shutil.copytree(digits_bundles["bundles"]["int8"], tmp_path / "local" / "digits-int8")
    upload = Upload(agent.bundle_key(bundle), bundle.name, "folder", bundle)
    sent = pack_folder(upload, tmp_path)
    store, received = tmp_path / "store", tmp_path / "received"
    store.mkdir()
    arrived = received / "bundles" / upload.key / f"{bundle.name}.tar.gz"
    arrived.parent.mkdir(parents=True)
    entry = {"key": upload.key, "name": bundle.name, "kind": "folder", "sha256": sha256_file(sent)}
    arrived.write_bytes(sent.read_bytes()[:-100])  # cut short: the transfer's SHA-256 differs
    with pytest.raises(IntegrityError, match="corrupted"):
        agent.install_bundle(entry, received, store)
    assert list(store.iterdir()) == []
    # whole, but not the bundle announced (its manifest differs)
    manifest = bundle / "edgekit.json"
    manifest.write_text(manifest.read_text().replace('"digits', '"other', 1))
    archive = pack_archive(bundle, tmp_path / "other.tar.gz", force=True)
    arrived.write_bytes(archive.read_bytes())
    with pytest.raises(IntegrityError, match="not the one announced"):
        agent.install_bundle({**entry, "sha256": sha256_file(archive)}, received, store)
    assert list(store.iterdir()) == []
    # the real one installs
    arrived.write_bytes(sent.read_bytes())
    manifest.write_text(manifest.read_text().replace('"other', '"digits', 1))
    agent.install_bundle(entry, received, store)
    assert [p.name for p in store.iterdir()] == [upload.key]


def test_frames_refuse_paths_outside_their_folder(tmp_path):
    for name in ("../x", "/etc/passwd", "a/../../b", ""):
        with pytest.raises(framing.FrameError):
            framing.safe_relative(name)


FACTS = {
    "pi4-bookworm-64": {"arch": "aarch64", "cpu": "cortex-a72", "python": "3.11.2", "numpy": None, "runtimes": {}},
    "pi5": {"arch": "aarch64", "cpu": "cortex-a76", "python": "3.11.2", "runtimes": {}},
    "pi-armv7": {"arch": "armv7l", "cpu": "cortex-a72", "python": "3.11.2", "numpy": "1.24.2", "pillow": "9.4.0",
                 "runtimes": {}},
    "pi-armv7-bare": {"arch": "armv7l", "cpu": "cortex-a72", "python": "3.11.2", "numpy": None, "pillow": None},
    "nano-jetpack4": {"arch": "aarch64", "cpu": "cortex-a57", "python": "3.6.9", "runtimes": {}},
    "orin-jetpack6": {"arch": "aarch64", "cpu": "cortex-a78ae", "python": "3.10.12", "runtimes": {}},
    "emulated-armv7": {"arch": "armv7l", "cpu": "cortex-a7", "python": "3.11.2", "emulated": True,
                       "runtimes": {"tflite-runtime": "2.14.0"}},
}  # fmt: skip


@pytest.mark.parametrize(
    "device, target",
    [("pi4-bookworm-64", "rpi4"), ("pi5", "rpi5"), ("pi-armv7", "rpi-armv7"), ("nano-jetpack4", "jetson-nano"),
     ("orin-jetpack6", "jetson-orin"), ("emulated-armv7", "rpi-armv7")],
)  # fmt: skip
def test_match_target(device, target):
    assert match_target(FACTS[device]).name == target


def test_target_warning():
    assert target_warning("pi", {"target": "rpi4"}, FACTS["pi4-bookworm-64"]) is None
    assert "looks like rpi4" in target_warning("pi", {"target": "rpi5"}, FACTS["pi4-bookworm-64"])
    assert "the device is armv7l" in target_warning("pi", {"target": "rpi4"}, FACTS["pi-armv7"])


def test_setup_plans_per_device_family():
    pi64 = setup_plan(FACTS["pi4-bookworm-64"])
    assert not pi64.system_site_packages and pi64.packages[0].startswith("ai-edge-litert")
    armv7 = setup_plan(FACTS["pi-armv7"])
    assert armv7.system_site_packages and armv7.packages == ("tflite-runtime", "numpy<2")
    with pytest.raises(Exception, match="apt install python3-numpy python3-pil"):
        setup_plan(FACTS["pi-armv7-bare"])
    with pytest.raises(Exception, match="3.6.9 and edgekit needs 3.9"):
        setup_plan(FACTS["nano-jetpack4"])
    assert setup_plan(FACTS["orin-jetpack6"]).packages[0] == "ai-edge-litert>=2.3"
    assert setup_plan({**FACTS["orin-jetpack6"], "python": "3.9.5"}).packages[0] == "ai-edge-litert>=2.1"


def test_tflite_runtime_with_numpy_2_is_refused(monkeypatch):
    from edgekit.runtime import interpreter

    tflite_runtime = interpreter.RuntimeInfo("tflite-runtime", "2.14.0", object)
    monkeypatch.setattr(interpreter.np, "__version__", "2.1.0")
    with pytest.raises(RuntimeNotFound, match=r"pip install 'numpy<2'"):
        interpreter.check_numpy_for(tflite_runtime)
    interpreter.check_numpy_for(interpreter.RuntimeInfo("ai-edge-litert", "2.3.0", object))
    monkeypatch.setattr(interpreter.np, "__version__", "1.26.4")
    interpreter.check_numpy_for(tflite_runtime)


def test_tflite_runtime_with_numpy_2_for_real(digits_bundles, tmp_path):
    """The issue's reproduction on x86: tflite-runtime 2.14 (make arm-env's reference venv) with numpy 2
    first on the path fails at the first call; the check refuses it first, in one line."""
    import numpy

    python = ROOT / ".arm" / "venv-x86_64-tflite-runtime" / "bin" / "python"
    if not python.exists() or not numpy.__version__.startswith("2."):
        pytest.skip("needs make arm-env and numpy 2 in the laptop's venv")
    numpy2 = tmp_path / "numpy2"
    numpy2.mkdir()
    for name in ("numpy", "numpy.libs"):
        if (Path(numpy.__file__).parents[1] / name).exists():
            (numpy2 / name).symlink_to(Path(numpy.__file__).parents[1] / name)
    env = {**os.environ, "PYTHONPATH": f"{numpy2}:{ROOT}", "PYTHONNOUSERSITE": "1"}
    bundle = str(digits_bundles["bundles"]["float32"])
    run = f"import edgekit; edgekit.run({bundle!r}, runtime='tflite-runtime', repeat=1)"
    refused = subprocess.run([str(python), "-c", run], capture_output=True, text=True, env=env)
    assert refused.returncode != 0
    assert "RuntimeNotFound" in refused.stderr and "pip install 'numpy<2'" in refused.stderr
    assert "SystemError" not in refused.stderr  # refused before the runtime's own crash


def test_report_view_reads_like_the_report():
    rows = [{"within_budget": False}, {"within_budget": True}]
    data = {"runtime": "tflite-runtime", "runtime_version": "2.14.0", "latency_ms": {"p99": 1.5}, "rows": rows}
    view = ReportView({**data, "results": [{"input": "a"}]})
    assert (view.runtime.name, view.runtime.version, view.latency_ms.p99) == ("tflite-runtime", "2.14.0", 1.5)
    assert len(view.over_budget_rows) == 1 and view.results[0].input == "a" and view.results[0].top_k is None


def test_a_missing_local_file_is_said_before_connecting(tmp_path):
    from edgekit.errors import InputError
    from edgekit.remote.remote_run import run_on

    with pytest.raises(InputError, match="nothing-here: no such file or folder"):
        run_on("root@127.0.0.5:1", "run", {"bundle": tmp_path / "nothing-here"})
