"""`edgekit device info` and `edgekit device setup`: what a device is, which target profile fits it, and
installing the device half's dependencies into a venv there with the device's own pip.

The plan (what to install, how) is computed here from the device's facts, so every device family is
testable without one: a 64-bit Pi OS or a Jetson with JetPack 5/6 gets ai-edge-litert in a venv; 32-bit Pi
OS gets a venv with --system-site-packages (numpy and Pillow from apt: PyPI has no armv7 wheels) plus
tflite-runtime with numpy<2; a Python older than 3.9 (JetPack 4) is refused with what to do instead.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import DeviceError, InputError
from edgekit.remote.remote_run import DEVICE_VENV, run_on
from edgekit.remote.ssh import Connection
from edgekit.targets import Target, list_targets


def device_info(host: str, ssh_config: str | os.PathLike[str] | None = None, remote_python: str | None = None) -> dict:
    """The device's facts plus "host" and "target" (the matching profile's name, or None)."""
    facts = run_on(host, "info", {}, ssh_config=ssh_config, remote_python=remote_python)["device"]
    target = match_target(facts)
    return {"host": host, **facts, "target": target.name if target else None}


def match_target(facts: dict[str, Any], targets: list[Target] | None = None) -> Target | None:
    """The profile for this device: same arch, then the same CPU (a real device's, or the CPU QEMU
    emulates for that profile), then the runtime it has."""
    best, best_score = None, 0
    for target in targets if targets is not None else list_targets():
        if target.arch != facts.get("arch"):
            continue
        cpu = str(facts.get("cpu", "")).lower()
        score = 1
        if cpu == target.cpu.lower():
            score += 4
        elif facts.get("emulated") and target.qemu_cpu and cpu == target.qemu_cpu.lower():
            score += 3
        if target.runtime in facts.get("runtimes", {}):
            score += 1
        if score > best_score:
            best, best_score = target, score
    return best


def target_warning(host: str, report: dict[str, Any], facts: dict[str, Any]) -> str | None:
    """A line when the bundle was made for another device than this one, else None."""
    name = report.get("target")
    if not name:
        return None
    known = {t.name: t for t in list_targets()}
    made_for = known.get(name)
    device = match_target(facts)
    arch = facts.get("arch")
    if made_for is not None and made_for.arch != arch:
        return f"{host}: the bundle was made for {name} ({made_for.arch}), the device is {arch}: timings say little"
    if device is not None and made_for is not None and device.name != name:
        return (
            f"{host}: the bundle was made for {name} ({made_for.cpu}), the device looks like {device.name} "
            f"({facts.get('cpu')}): convert with -t {device.name} for its quantization, threads and budget"
        )
    return None


# --- setup ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetupPlan:
    """What `device setup` does on one device: a venv, packages into it with the device's pip."""

    venv: str
    system_site_packages: bool
    packages: tuple[str, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "venv": self.venv,
            "system_site_packages": self.system_site_packages,
            "packages": list(self.packages),
            "notes": list(self.notes),
        }


def setup_plan(facts: dict[str, Any]) -> SetupPlan:
    """Choose the venv and packages for a device from its facts; refuse what cannot work, saying why."""
    python = tuple(int(p) for p in str(facts.get("python", "0.0")).split(".")[:2])
    arch = facts.get("arch")
    home_venv = f"~/{DEVICE_VENV}"
    if python < (3, 9):
        raise InputError(
            f"the device's Python is {facts.get('python')} and edgekit needs 3.9 or newer (JetPack 4 ships 3.6): "
            "install a newer Python there (README, 'Jetson Nano') and rerun with --remote-python PATH"
        )
    if arch == "armv7l":
        missing = [name for name, key in (("python3-numpy", "numpy"), ("python3-pil", "pillow")) if not facts.get(key)]
        if missing:
            raise InputError(
                "32-bit ARM has no numpy/Pillow wheels on PyPI: on the device run "
                f"`sudo apt install {' '.join(missing)} python3-venv`, then device setup again"
            )
        if python != (3, 11):
            notes = ("tflite-runtime 2.14's armv7 wheel is for Python 3.11 (Bookworm); pip picks an older one here",)
        else:
            notes = ()
        return SetupPlan(home_venv, True, ("tflite-runtime", "numpy<2"), notes)
    if arch in ("aarch64", "x86_64"):
        litert = "ai-edge-litert>=2.3" if python >= (3, 10) else "ai-edge-litert>=2.1"
        return SetupPlan(home_venv, False, (litert, "numpy", "pillow"))
    raise InputError(f"no TFLite runtime wheels for {arch} on PyPI: edgekit supports aarch64, armv7l and x86_64")


# Runs on the device with its python3: venv, pip install, check the imports; one line per step on stderr.
# argv: the plan as JSON, then the folder of uploaded wheels ("" when pip may use the index).
SETUP_SCRIPT = r"""
import glob, json, os, subprocess, sys
plan, wheels = json.loads(sys.argv[1]), sys.argv[2]
venv = os.path.expanduser(plan["venv"])
python = os.path.join(venv, "bin", "python")
def step(message):
    sys.stderr.write("edgekit-setup: " + message + "\n")
    sys.stderr.flush()
def run(command, what):
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    if result.returncode != 0:
        tail = [line for line in result.stdout.splitlines() if line.strip()][-2:]
        sys.exit("EDGEKIT-SETUP-FAILED " + what + ": " + " / ".join(tail))
    return result.stdout
if not os.path.exists(python):
    step("creating the venv " + venv)
    system = ["--system-site-packages"] if plan["system_site_packages"] else []
    made = subprocess.run([sys.executable, "-m", "venv"] + system + [venv], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True)
    if made.returncode != 0:
        pip_wheel = sorted(glob.glob(os.path.join(wheels, "pip-*.whl"))) if wheels else []
        if "ensurepip" not in made.stdout or not pip_wheel:
            hint = "sudo apt install python3-venv" if "ensurepip" in made.stdout else made.stdout.strip()[-200:]
            sys.exit("EDGEKIT-SETUP-FAILED python3 -m venv: " + hint)
        # Debian without python3-venv: a venv without pip, then pip from the uploaded wheel itself.
        run([sys.executable, "-m", "venv", "--without-pip"] + system + [venv], "python3 -m venv --without-pip")
        run([python, os.path.join(pip_wheel[-1], "pip"), "install", "--no-index", "--find-links", wheels, "pip"],
            "pip bootstrap")
pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
if wheels:
    pip += ["--no-index", "--find-links", wheels]
step("pip install " + " ".join(plan["packages"]))
run(pip + plan["packages"], "pip install")
check = ("import importlib, importlib.util, numpy, PIL; "
         "found = [n for n in ('ai_edge_litert', 'tflite_runtime') if importlib.util.find_spec(n)]; "
         "importlib.import_module(found[0] + '.interpreter')")
run([python, "-c", check], "the installed runtime does not import")
step("ready: " + python)
"""


def device_setup(
    host: str,
    wheels: str | os.PathLike[str] | None = None,
    ssh_config: str | os.PathLike[str] | None = None,
    remote_python: str | None = None,
) -> dict[str, Any]:
    """Install what the device lacks into a venv there with its own pip (from `wheels`, a folder of .whl
    files, when the device has no internet); returns the plan, the log and the device's facts after."""
    import json

    facts = run_on(host, "info", {}, ssh_config=ssh_config, remote_python=remote_python or "python3")["device"]
    plan = setup_plan(facts).to_dict()
    connection = Connection(host, ssh_config)
    python = shlex.quote(remote_python) if remote_python else "python3"
    command = f"{python} -c {shlex.quote(SETUP_SCRIPT)} {shlex.quote(json.dumps(plan))}"
    stdin = None
    if wheels is None:
        script = f'{command} ""'
    else:
        files = sorted(Path(wheels).glob("*.whl"))
        if not files:
            raise InputError(f"{wheels}: no .whl files")
        # The wheels travel as a tar on stdin into a temporary folder that goes when the script ends.
        script = f'W=$(mktemp -d) && trap \'rm -rf "$W"\' EXIT && tar -x -C "$W" && {command} "$W"'
        stdin = _tar_of(files)
    result = connection.run(script, stdin=stdin, timeout=3600)
    stderr = result.stderr.decode("utf-8", "replace")
    if result.returncode != 0:
        if "EDGEKIT-SETUP-FAILED" in stderr:
            cause = stderr.split("EDGEKIT-SETUP-FAILED", 1)[1].strip().splitlines()[0]
            raise DeviceError(f"{host}: setup failed: {cause}")
        from edgekit.remote.remote_run import problem

        raise problem(connection, result.returncode, stderr)
    after = run_on(host, "info", {}, ssh_config=ssh_config)["device"]
    log = [line for line in stderr.splitlines() if line.startswith("edgekit-setup: ")]
    return {"host": host, "plan": plan, "device": after, "log": log}


def _tar_of(files: list[Path]) -> bytes:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for file in files:
            tar.add(str(file), arcname=file.name)
    return buffer.getvalue()
