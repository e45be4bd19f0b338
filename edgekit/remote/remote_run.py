"""`edgekit run/bench ... --on HOST`: send what the device lacks, run there, bring the report back.

    answer = run_on("pi@raspberrypi.local", "run", {"bundle": Path("digits-rpi4"), "inputs": [Path("a.png")]})

Keyword arguments are the Python API's (edgekit.run / edgekit.bench). `Path` values are the laptop's
files: bundles (`bundle`, `models`) are sent once and recognised by SHA-256 afterwards, inputs travel
with each request, outputs (`save_outputs`) come back. One multiplexed SSH connection; on a second run
with everything cached, one ssh exec. Paths in the report are the laptop's again.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shlex
import shutil
import tarfile
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.bundle import MANIFEST_NAME, SIGNATURE_NAME, sha256_file
from edgekit.errors import DeviceError, EdgekitError
from edgekit.remote import framing
from edgekit.remote.agent import bundle_key
from edgekit.remote.payload import payload_id, payload_path
from edgekit.remote.ssh import SSH_FAILED, Connection, failure

BUNDLE_PARAMS = ("bundle", "models")
OUTPUT_DIR_PARAMS = ("save_outputs",)
MISSING_EXIT, NO_PYTHON_EXIT, OLD_PYTHON_EXIT = 90, 94, 95
CACHE = '"${XDG_CACHE_HOME:-$HOME/.cache}/edgekit"'
DEVICE_VENV = ".local/share/edgekit/venv"  # where `edgekit device setup` installs, relative to the device's HOME


@dataclass
class Upload:
    key: str
    name: str
    kind: str  # "folder" (sent as a tar.gz made here) or "file" (sent as is)
    source: Path

    def placeholder(self) -> dict[str, str]:
        return {"$bundle": self.key, "name": self.name}


@dataclass
class Request:
    """The kwargs with the laptop's paths replaced by placeholders, and what travels with them."""

    kwargs: dict[str, Any]
    bundles: list[Upload] = field(default_factory=list)
    inputs: list[tuple[str, Path]] = field(default_factory=list)  # (name in the frame, local file)
    outputs: list[tuple[str, Path]] = field(default_factory=list)  # (folder in the frame, local folder)
    local_names: dict[str, str] = field(default_factory=dict)  # frame-relative path -> what the user typed


def bundle_upload(path: Path) -> Upload:
    if path.is_dir():
        return Upload(bundle_key(path), path.name, "folder", path)
    return Upload(sha256_file(path), path.name, "file", path)


def prepare(kwargs: dict[str, Any]) -> Request:
    request = Request({})

    def convert(name: str, value: Any) -> Any:
        if isinstance(value, Path):
            if name in BUNDLE_PARAMS and value.exists():
                upload = bundle_upload(value)
                request.bundles.append(upload)
                request.local_names[f"bundles/{upload.key}/{upload.name}"] = str(value)
                return upload.placeholder()
            if name in OUTPUT_DIR_PARAMS:
                slot = f"out/{len(request.outputs)}"
                request.outputs.append((slot, value))
                request.local_names[slot] = str(value)
                return {"$out": slot}
            if not value.exists():
                return str(value)  # the device says "no such file", naming the user's path
            slot = f"in/{len(request.local_names)}/{value.name}"
            request.local_names[slot] = str(value)
            if value.is_dir():
                for file in sorted(p for p in value.rglob("*") if p.is_file()):
                    request.inputs.append((f"{slot}/{file.relative_to(value).as_posix()}", file))
            else:
                request.inputs.append((slot, value))
            return {"$path": slot}
        if isinstance(value, (list, tuple)):
            return [convert(name, v) for v in value]
        if isinstance(value, dict):
            return {k: convert(name, v) for k, v in value.items()}
        return value

    request.kwargs = {name: convert(name, value) for name, value in kwargs.items()}
    return request


def pack_folder(upload: Upload, dest: Path) -> Path:
    """A bundle folder as a tar.gz of exactly its manifest, signature and listed files."""
    import json

    folder = upload.source
    manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    names = [MANIFEST_NAME, *sorted(manifest.get("files", {}))]
    if (folder / SIGNATURE_NAME).is_file():
        names.append(SIGNATURE_NAME)
    archive = dest / f"{upload.key}.tar.gz"
    with (
        open(archive, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in names:
            info = tar.gettarinfo(str(folder / name), arcname=f"{upload.name}/{name}")
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            with open(folder / name, "rb") as handle:
                tar.addfile(info, handle)
    return archive


def shell_word(path: str) -> str:
    """A device path for sh: `~/` kept expandable, the rest quoted."""
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def python_choice(python: str | None) -> str:
    """sh that sets PY: the given interpreter, else the venv `edgekit device setup` made, else python3."""
    if python:
        return f"PY={shell_word(python)}\n"
    return f'PY=python3; [ -x "$HOME/{DEVICE_VENV}/bin/python" ] && PY="$HOME/{DEVICE_VENV}/bin/python"\n'


def agent_script(python: str | None, keys: list[str]) -> str:
    """Run the cached agent, or say (exit 90) which of the agent and the bundles the device lacks."""
    return (
        f'C={CACHE}; A="$C/agent-{payload_id()}"; {python_choice(python)}'
        'command -v "$PY" >/dev/null 2>&1 || { echo "EDGEKIT-NO-PYTHON $PY" >&2; exit 94; }\n'
        'm=""; [ -f "$A/__main__.py" ] || m="$m agent"\n'
        f'for k in {" ".join(keys)}; do [ -d "$C/bundles/$k" ] || m="$m $k"; done\n'
        f'[ -z "$m" ] || {{ echo "EDGEKIT-MISSING$m" >&2; exit {MISSING_EXIT}; }}\n'
        'exec "$PY" "$A" serve\n'
    )


# Unpacks the payload into the device's cache: written to a temporary name, its SHA-256 checked, then
# renamed; a partial upload is never used.
INSTALL_AGENT = r"""
import hashlib, os, shutil, sys, tempfile, zipfile
cache, name, digest = sys.argv[1:4]
os.makedirs(cache, exist_ok=True)
final = os.path.join(cache, name)
fd, tmp = tempfile.mkstemp(prefix=".agent-", dir=cache)
folder = tmp + ".d"
try:
    h = hashlib.sha256()
    with os.fdopen(fd, "wb") as out:
        for chunk in iter(lambda: sys.stdin.buffer.read(1 << 20), b""):
            h.update(chunk)
            out.write(chunk)
    if h.hexdigest() != digest:
        sys.exit("EDGEKIT-CORRUPT the payload arrived corrupted")
    zipfile.ZipFile(tmp).extractall(folder)
    try:
        os.rename(folder, final)
    except OSError:
        if not os.path.isdir(final):
            raise
except OSError as exc:
    sys.exit("EDGEKIT-%s %s" % ("DISK-FULL" if exc.errno == 28 else "OSERROR", exc))
finally:
    os.unlink(tmp)
    shutil.rmtree(folder, ignore_errors=True)
"""


def install_agent(connection: Connection, python: str | None) -> None:
    payload = payload_path()
    script = (
        f'C={CACHE}; {python_choice(python)}exec "$PY" -c {shlex.quote(INSTALL_AGENT)} '
        f'"$C" agent-{payload_id()} {sha256_file(payload)}'
    )
    with open(payload, "rb") as handle:
        result = connection.run(script, stdin=handle)
    if result.returncode != 0:
        raise problem(connection, result.returncode, result.stderr.decode("utf-8", "replace"))


def problem(connection: Connection, returncode: int | None, stderr: str) -> DeviceError:
    """What a failed exec on the device means, as one line naming the host."""
    host = connection.host
    if returncode == SSH_FAILED or returncode is None:
        error = failure(host, stderr, returncode)
        if str(error).startswith(f"{host}: ssh failed"):  # the link went away without ssh saying why
            return DeviceError(f"{host}: the connection dropped ({str(error).split('ssh failed ', 1)[1]})")
        return error
    if returncode == NO_PYTHON_EXIT or "EDGEKIT-NO-PYTHON" in stderr:
        python = stderr.split("EDGEKIT-NO-PYTHON", 1)[-1].split("\n")[0].strip() or "python3"
        return DeviceError(f"{host}: no Python on the device ({python} not found; --remote-python PATH picks another)")
    if returncode == OLD_PYTHON_EXIT:
        found = stderr.rsplit("this is", 1)[-1].strip() if "this is" in stderr else "older"
        return DeviceError(f"{host}: edgekit needs Python 3.9 or newer on the device, its python is {found}")
    if "EDGEKIT-DISK-FULL" in stderr:
        return DeviceError(f"{host}: disk full on the device (no space left for edgekit's cache)")
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return DeviceError(
        f"{host}: the device-side run failed (exit {returncode}): {lines[-1] if lines else 'no message'}"
    )


def exchange(connection: Connection, script: str, header: dict[str, Any], files: list[tuple[str, Path]], inbox: Path):
    """One exec: send a frame on stdin (from a thread: the device may answer before reading it all), read
    the answer frame. Returns (answer or None, returncode, stderr)."""
    process = connection.start(script)
    errors: list[bytes] = []

    def send() -> None:
        with contextlib.suppress(OSError, ValueError):  # the device stopped reading: its exit code says why
            framing.write_frame(process.stdin, header, files)

    def drain() -> None:
        errors.append(process.stderr.read())

    threads = [threading.Thread(target=send, daemon=True), threading.Thread(target=drain, daemon=True)]
    for thread in threads:
        thread.start()
    answer = None
    try:
        try:
            answer = framing.read_header(process.stdout)
            framing.read_files(process.stdout, answer, inbox)
        except framing.FrameError:
            answer = None
        process.stdin.close()
        returncode = process.wait()
        threads[1].join(timeout=5)
    except BaseException:  # Ctrl-C: the device sees its stdin end and stops; nothing waits for it here
        process.kill()
        process.wait()
        raise
    return answer, returncode, b"".join(errors).decode("utf-8", "replace")


def to_local(value: Any, names: list[tuple[str, str]]) -> Any:
    """Device paths in a report → the paths the user typed."""
    if isinstance(value, str):
        for remote, local in names:
            value = value.replace(remote, local)
        return value
    if isinstance(value, list):
        return [to_local(v, names) for v in value]
    if isinstance(value, dict):
        return {k: to_local(v, names) for k, v in value.items()}
    return value


def bring_back(inbox: Path, outputs: list[tuple[str, Path]]) -> None:
    """Output files from the device into the user's folders, each written atomically."""
    from edgekit.bundle.files import atomic_path

    for slot, local in outputs:
        source = inbox.joinpath(*slot.split("/"))
        if not source.is_dir():
            continue
        for file in sorted(p for p in source.rglob("*") if p.is_file()):
            final = local / file.relative_to(source)
            final.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(final) as tmp:
                shutil.copyfile(file, tmp)


def run_on(
    host: str,
    command: str,
    kwargs: dict[str, Any],
    ssh_config: str | os.PathLike[str] | None = None,
    remote_python: str | None = None,
) -> dict[str, Any]:
    """Run edgekit.<command>(**kwargs) on `host` ("run" or "bench"; "info" for the device's facts).
    Returns {"report", "device", "ignored"} with the laptop's paths in the report."""
    connection = Connection(host, ssh_config)
    connection.open()
    request = prepare(kwargs)
    with tempfile.TemporaryDirectory(prefix="edgekit-remote-") as scratch:
        answer = ask(connection, remote_python, command, request, Path(scratch))
        work, store = answer.get("work"), answer.get("store")
        names = [(f"{work}/{slot}", local) for slot, local in request.local_names.items()]
        names += [(f"{store}/{slot[len('bundles/'):]}", local) for slot, local in request.local_names.items()
                  if slot.startswith("bundles/")]  # fmt: skip
        names.sort(key=lambda item: -len(item[0]))
        if not answer.get("ok"):
            message = to_local(str(answer.get("error", "the device-side run failed")), names)
            error = EdgekitError(f"{connection.host}: {message}")
            error.exit_code = int(answer.get("exit_code", 1))
            raise error
        if command == "info":
            return {"report": {}, "device": answer["facts"], "ignored": []}
        report = to_local(answer["report"], names)
        bring_back(Path(scratch) / "inbox", request.outputs)
    device = answer.get("device", {})
    report = {**report, "host": str(connection.host), "cpu": device.get("cpu")}
    return {"report": report, "device": device, "ignored": answer.get("ignored", [])}


def ask(connection: Connection, remote_python: str | None, command: str, request: Request, scratch: Path) -> dict:
    """Exchange one request with the agent, first sending what the device lacks (the agent, bundles)."""
    keys = sorted({upload.key for upload in request.bundles})
    header: dict[str, Any] = {"command": command, "kwargs": request.kwargs}
    files = list(request.inputs)
    for attempt in range(3):
        answer, returncode, stderr = exchange(
            connection, agent_script(remote_python, keys), header, files, scratch / "inbox"
        )
        if answer is not None or returncode != MISSING_EXIT or attempt == 2:
            break
        missing = stderr.split("EDGEKIT-MISSING", 1)[-1].split("\n")[0].split()
        if "agent" in missing:
            install_agent(connection, remote_python)
        install = [u for u in {u.key: u for u in request.bundles}.values() if u.key in missing]
        if install:
            entries, sent = [], []
            for upload in install:
                source = pack_folder(upload, scratch) if upload.kind == "folder" else upload.source
                name = upload.name + ".tar.gz" if upload.kind == "folder" else upload.name
                sent.append((f"bundles/{upload.key}/{name}", source))
                entries.append(
                    {"key": upload.key, "name": upload.name, "kind": upload.kind, "sha256": sha256_file(source)}
                )
            header = {**header, "install": entries}
            files = [*request.inputs, *sent]
            keys = [k for k in keys if k not in missing]  # installed by this request, before the run
    if answer is None:
        raise problem(connection, returncode, stderr)
    return answer
