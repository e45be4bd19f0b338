"""The device side of a remote run: what `python3 PAYLOAD COMMAND ...` does on a Pi or a Jetson.

    python3 PAYLOAD run BUNDLE [INPUT...]     the report of edgekit.run(), as JSON on stdout
    python3 PAYLOAD bench MODEL...            the report of edgekit.bench()
    python3 PAYLOAD run '{"bundle": ..., "threads": 2}'   keyword arguments of the Python API as JSON
    python3 PAYLOAD info                      the device's facts (arch, CPU, Python, runtimes)
    python3 PAYLOAD serve                     one framed request on stdin, one framed answer on stdout:
                                              what `edgekit run --on HOST` speaks (see framing.py)

It calls the Python API, never the CLI (a device has no click or rich). Errors come back as JSON with
the exit code the local command would have used. Under `serve`, bundles arrive once, are verified
(the transfer's SHA-256, then every file against the manifest) in a temporary folder and only then
renamed into the cache; inputs and outputs live in a per-run folder removed at the end, and the run
stops when the laptop goes away (its end of stdin closes).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError, InputError, IntegrityError, RuntimeNotFound
from edgekit.remote import framing

COMMANDS = ("run", "bench")
RUN_TTL_S = 24 * 3600  # per-run folders left by a killed agent are removed after a day
NO_SPACE = 28  # errno.ENOSPC, without importing errno


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edgekit"


def missing_module(exc: BaseException) -> str | None:
    """numpy or Pillow absent on the device: what the ImportError names."""
    if isinstance(exc, ImportError) and (exc.name or "").split(".")[0] in ("numpy", "PIL"):
        return {"PIL": "Pillow"}.get(exc.name.split(".")[0], "numpy")
    return None


def exit_code_of(exc: BaseException) -> int:
    if isinstance(exc, RuntimeNotFound) or missing_module(exc):
        return 5  # the device cannot run edgekit: not the bundle's fault
    if isinstance(exc, EdgekitError):
        return exc.exit_code
    if isinstance(exc, OSError) and exc.errno == NO_SPACE:
        return 5
    return 1


def error_answer(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, EdgekitError):
        message = str(exc)
        if isinstance(exc, RuntimeNotFound):
            message += " (edgekit device setup HOST installs one)"
    elif missing_module(exc):
        message = f"{missing_module(exc)} is not installed for {sys.executable} (edgekit device setup HOST installs it)"
    elif isinstance(exc, OSError) and exc.errno == NO_SPACE:
        message = f"disk full on the device ({exc.filename or cache_dir()})"
    elif isinstance(exc, OSError):
        message = f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}"
    else:
        message = f"internal error on the device: {type(exc).__name__}: {exc}"
    return {"ok": False, "error": " ".join(message.split()), "exit_code": exit_code_of(exc), "type": type(exc).__name__}


def call_api(command: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Run edgekit.run / edgekit.bench with JSON keyword arguments; the report as a dict."""
    import inspect

    import edgekit
    from edgekit.remote.compat import check_runtime_numpy

    if command not in COMMANDS:
        raise InputError(f"unknown agent command {command!r} (known: {', '.join(COMMANDS)}, info, serve)")
    function = getattr(edgekit, command)
    accepted = inspect.signature(function).parameters
    ignored = sorted(k for k in kwargs if k not in accepted)
    check_runtime_numpy(kwargs.get("runtime"))
    report = function(**{k: v for k, v in kwargs.items() if k in accepted})
    return {"ok": True, "report": report.to_dict(), "ignored": ignored}


def plain_main(command: str, args: list[str]) -> int:
    """`python3 PAYLOAD run BUNDLE INPUT...`: the report JSON on stdout, the local exit codes."""
    if command == "info":
        from edgekit.remote.facts import device_facts

        print(json.dumps(device_facts(), indent=2))
        return 0
    if args and args[0].lstrip().startswith("{"):
        kwargs = json.loads(args[0])
    elif command == "run":
        kwargs = {"bundle": args[0] if args else "", "inputs": args[1:]}
    else:
        kwargs = {"models": args}
    try:
        answer = call_api(command, kwargs)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        answer = error_answer(exc)
    print(json.dumps(answer.get("report", answer), indent=2))
    if not answer["ok"]:
        print(f"edgekit: error: {answer['error']}", file=sys.stderr)
        return int(answer["exit_code"])
    return 0


# --- serve: the framed protocol `edgekit run --on HOST` speaks ------------------------------------


def watch_stdin(stdin: Any, answered: threading.Event) -> None:
    """When the laptop goes away (Ctrl-C there, a dropped connection) stdin ends: stop like Ctrl-C, so
    the per-run folder is removed; if a native call does not return, leave anyway after a grace time.
    The laptop also closes stdin once it has the answer: that end is no interruption."""

    def wait() -> None:
        try:
            while stdin.read(65536):
                pass
        except (OSError, ValueError):
            pass
        if answered.is_set():
            return
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(10)
        os._exit(130)

    threading.Thread(target=wait, daemon=True).start()


def remove_stale_runs(runs: Path) -> None:
    now = time.time()
    for entry in runs.glob("run-*"):
        try:
            if now - entry.stat().st_mtime > RUN_TTL_S:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            pass


def bundle_key(folder: Path) -> str:
    """What identifies a bundle folder: the SHA-256 of its manifest (which pins every file's SHA-256)
    and of its signature, when it has one."""
    from edgekit.bundle import MANIFEST_NAME, SIGNATURE_NAME

    digest = hashlib.sha256((folder / MANIFEST_NAME).read_bytes())
    signature = folder / SIGNATURE_NAME
    if signature.is_file():
        digest.update(signature.read_bytes())
    return digest.hexdigest()


def install_bundle(entry: dict[str, Any], received: Path, store: Path) -> None:
    """Verify a received bundle in a temporary folder, then rename it into the cache: a partial or
    corrupt upload is never used."""
    from edgekit.bundle import open_bundle, sha256_file
    from edgekit.bundle.archive import unpack_archive

    key, name, kind = str(entry["key"]), str(entry["name"]), str(entry["kind"])
    framing.safe_relative(key)
    framing.safe_relative(name)
    final = store / key
    if final.is_dir():
        return
    sent = received / "bundles" / key / (name + ".tar.gz" if kind == "folder" else name)
    if sha256_file(sent) != entry["sha256"]:
        raise IntegrityError(f"{name}: upload corrupted (SHA-256 of what arrived differs), not used")
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=store))
    try:
        if kind == "folder":
            folder = unpack_archive(sent, staging / ".unpack")
            folder.rename(staging / name)
            shutil.rmtree(staging / ".unpack")
            with open_bundle(staging / name):
                pass
            if bundle_key(staging / name) != key:
                raise IntegrityError(f"{name}: the bundle that arrived is not the one announced, not used")
        else:
            if entry["sha256"] != key:
                raise IntegrityError(f"{name}: the file that arrived is not the one announced, not used")
            shutil.move(str(sent), str(staging / name))
            if name.endswith(".tar.gz"):
                with open_bundle(staging / name):
                    pass
        try:
            os.rename(staging, final)
        except OSError:
            if not final.is_dir():  # not another run that installed it first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def resolve(value: Any, work: Path, store: Path) -> Any:
    """Replace the laptop's placeholders with device paths: {"$path": "in/0/x.png"} (a sent input),
    {"$bundle": KEY, "name": NAME} (a cached bundle), {"$out": "out/0"} (an output brought back)."""
    if isinstance(value, dict):
        if "$path" in value:
            return str(work.joinpath(*framing.safe_relative(value["$path"]).parts))
        if "$out" in value:
            path = work.joinpath(*framing.safe_relative(value["$out"]).parts)
            path.parent.mkdir(parents=True, exist_ok=True)
            return str(path)
        if "$bundle" in value:
            framing.safe_relative(value["$bundle"])
            return str(store / value["$bundle"] / framing.safe_relative(value["name"]))
        return {k: resolve(v, work, store) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, work, store) for v in value]
    return value


def serve() -> int:
    stdin, frames = framing.binary_stdio()
    root = cache_dir()
    store, runs = root / "bundles", root / "runs"
    work: Path | None = None
    answered = threading.Event()
    answer: dict[str, Any]
    files: list[tuple[str, Path]] = []
    try:
        store.mkdir(parents=True, exist_ok=True)
        runs.mkdir(parents=True, exist_ok=True)
        remove_stale_runs(runs)
        work = Path(tempfile.mkdtemp(prefix="run-", dir=runs))
        request = framing.read_header(stdin)
        framing.read_files(stdin, request, work)
        watch_stdin(stdin, answered)
        for entry in request.get("install", ()):
            install_bundle(entry, work, store)
        if request.get("command") == "info":
            from edgekit.remote.facts import device_facts

            answer = {"ok": True, "facts": device_facts()}
        else:
            kwargs = resolve(request.get("kwargs", {}), work, store)
            answer = call_api(str(request.get("command")), kwargs)
            from edgekit.remote.facts import device_facts

            answer["device"] = device_facts(packages=False)
            out = work / "out"
            if out.is_dir():
                files = [(p.relative_to(work).as_posix(), p) for p in sorted(out.rglob("*")) if p.is_file()]
    except KeyboardInterrupt:
        answer = {"ok": False, "error": "interrupted", "exit_code": 130, "type": "KeyboardInterrupt"}
    except Exception as exc:
        answer = error_answer(exc)
    answer.update(work=str(work), store=str(store))  # the laptop maps these paths back to its own
    answered.set()
    try:
        framing.write_frame(frames, answer, files)
    except (OSError, ValueError):
        pass  # the laptop is gone: nobody to answer
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "serve":
        return serve()
    if command not in (*COMMANDS, "info"):
        print(f"edgekit agent: unknown command {command!r}", file=sys.stderr)
        return 2
    return plain_main(command, rest)
