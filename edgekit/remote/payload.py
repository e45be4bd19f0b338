"""The payload: edgekit's device half as one zip, what a remote run sends to a device.

`python3 PAYLOAD.zip COMMAND ...` runs the agent (edgekit/remote/agent.py) on anything with Python >= 3.9,
numpy, Pillow and a TFLite runtime: the zip holds the bundle reader, the runtime, the error family and the
agent, never the CLI (click, rich), the conversion half (TensorFlow) or the laptop's SSH code. It is built
once per edgekit version and content, cached under the user's cache folder, and the device caches it the
same way (unpacked, so its own Python keeps the bytecode).
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import edgekit
from edgekit.bundle.files import atomic_path

PACKAGE = Path(edgekit.__file__).resolve().parent
# Never on a device: the CLI needs click and rich (so does `python -m edgekit`), conversion needs
# TensorFlow, the rest is the laptop's.
LAPTOP_ONLY = ("cli", "conversion", "fleet")
REMOTE_DEVICE_MODULES = ("__init__.py", "agent.py", "compat.py", "facts.py", "framing.py")
ZIP_DATE = (2020, 1, 1, 0, 0, 0)  # fixed timestamps: the same sources give the same bytes
MAIN = b'''"""edgekit's device agent: python3 PAYLOAD.zip COMMAND ... (see edgekit/remote/agent.py)."""
import sys

if sys.version_info < (3, 9):
    sys.stderr.write("EDGEKIT-PYTHON-TOO-OLD edgekit needs Python 3.9 or newer, this is %s\\n" % sys.version.split()[0])
    sys.exit(95)

from edgekit.remote.agent import main

sys.exit(main())
'''


def device_files() -> list[tuple[str, Path]]:
    """(name in the zip, source file) for every module of the device half, sorted."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        parts = relative.parts
        if parts[0] in LAPTOP_ONLY or parts == ("__main__.py",) or "__pycache__" in parts:
            continue
        if parts[0] == "remote" and parts[-1] not in REMOTE_DEVICE_MODULES:
            continue
        found.append((Path("edgekit", relative).as_posix(), path))
    return found


def payload_id() -> str:
    """`VERSION-HASH`: what names the payload here and on the device (content hash of its files)."""
    digest = hashlib.sha256(MAIN)
    for name, path in device_files():
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return f"{edgekit.__version__}-{digest.hexdigest()[:16]}"


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edgekit"


def payload_path() -> Path:
    """The payload zip for this edgekit, built on first use (atomically) and reused afterwards."""
    final = cache_root() / "payload" / f"edgekit-agent-{payload_id()}.zip"
    if final.is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(final) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("__main__.py", ZIP_DATE), MAIN)
        for name, path in device_files():
            info = zipfile.ZipInfo(name, ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    return final
