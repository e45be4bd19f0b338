"""Runs on the device, sent there by `edgekit deploy`: install a bundle, verified before it becomes
current, or switch back to the previous one. Prints one JSON object; errors are one line on stderr
with edgekit's exit codes (4: the bundle failed its checks).

    python3 deploy_agent.py PAYLOAD.zip install ARCHIVE VERSION [--to DIR] [--trusted-key KEY]
    python3 deploy_agent.py PAYLOAD.zip rollback NAME [--to DIR]

Layout under DIR (default ~/.local/share/edgekit/bundles): NAME/VERSION/ is an unpacked, verified
bundle; NAME/current and NAME/previous are symlinks to versions. A switch is one rename of a new
symlink over the old one, so `current` always names a whole bundle: the old one until the switch, the
new one after it; an interrupted deploy leaves only a `.staging-*` folder behind (removed next time).
The standard library and edgekit's device half (from PAYLOAD.zip) only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

DEFAULT_ROOT = "~/.local/share/edgekit/bundles"
STAGING_PREFIX = ".staging-"


def install(archive: Path, version: str, root: Path, trusted_key: str | None) -> dict:
    """Unpack and verify `archive` next to the bundles, then make it NAME/current."""
    import tempfile

    from edgekit.bundle.archive import unpack_archive
    from edgekit.bundle.files import replace_path, signals_held
    from edgekit.bundle.reader import load_bundle

    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(root)
    staging: Path | None = None
    try:
        with signals_held():
            staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=root))
        folder = unpack_archive(archive, staging)
        name = load_bundle(folder, verify=True, trusted_key=trusted_key).manifest.name
        home = root / _plain_name(name)
        home.mkdir(exist_ok=True)
        target = home / version
        if not (target.is_dir() and _whole(target)):  # deployed before and intact: kept as it is
            replace_path(folder, target)
            _sync_folder(home)
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    previous = _link_target(home / "current")
    changed = previous != version
    if changed:
        if previous is not None:
            _switch(home / "previous", previous)
        _switch(home / "current", version)
    _remove_unused_versions(home)
    return _state(name, home, changed)


def rollback(name: str, root: Path) -> dict:
    """Make NAME/previous current again (and the current one previous)."""
    from edgekit.errors import InputError

    home = root / _plain_name(name)
    current, previous = _link_target(home / "current"), _link_target(home / "previous")
    if current is None:
        raise InputError(f"{home}: no bundle named {name} is deployed here")
    if previous is None or not (home / previous).is_dir():
        raise InputError(f"{home}: no previous version of {name} to roll back to")
    _switch(home / "previous", current)
    _switch(home / "current", previous)
    return _state(name, home, True)


def _whole(folder: Path) -> bool:
    from edgekit.bundle.reader import load_bundle
    from edgekit.errors import EdgekitError

    try:
        load_bundle(folder, verify=True)
    except EdgekitError:
        return False
    return True


def _state(name: str, home: Path, changed: bool) -> dict:
    return {
        "name": name,
        "path": str(home / "current"),
        "version": _link_target(home / "current"),
        "previous": _link_target(home / "previous"),
        "changed": changed,
    }


def _switch(link: Path, version: str) -> None:
    """Point `link` at `version` atomically: a new symlink renamed over the old one."""
    from edgekit.bundle.files import replace_path

    new = link.with_name(f".{link.name}.{os.getpid()}.new")
    if new.is_symlink() or new.exists():
        new.unlink()
    os.symlink(version, new)
    replace_path(new, link)
    _sync_folder(link.parent)


def _link_target(link: Path) -> str | None:
    return os.readlink(link) if link.is_symlink() else None


def _remove_unused_versions(home: Path) -> None:
    keep = {_link_target(home / "current"), _link_target(home / "previous")}
    for entry in home.iterdir():
        if entry.is_dir() and not entry.is_symlink() and entry.name not in keep and not entry.name.startswith("."):
            shutil.rmtree(entry, ignore_errors=True)


def _remove_stale_staging(root: Path) -> None:
    for entry in root.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(entry, ignore_errors=True)


def _sync_folder(folder: Path) -> None:
    """Make a rename durable (a device can lose power right after a deploy)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _plain_name(name: str) -> str:
    from edgekit.bundle.manifest import plain_file_name
    from edgekit.errors import InputError

    if not plain_file_name(name) or name.startswith("."):
        raise InputError(f"{name!r}: not a bundle name")
    return name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy_agent")
    parser.add_argument("payload")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("install")
    add.add_argument("archive", type=Path)
    add.add_argument("version")
    add.add_argument("--trusted-key")
    back = commands.add_parser("rollback")
    back.add_argument("name")
    for sub in (add, back):
        sub.add_argument("--to", default=DEFAULT_ROOT)
    args = parser.parse_args(argv)
    sys.path.insert(0, args.payload)
    from edgekit.errors import EdgekitError

    root = Path(os.path.expanduser(args.to))
    try:
        if args.command == "install":
            result = install(args.archive, args.version, root, args.trusted_key)
        else:
            result = rollback(args.name, root)
    except EdgekitError as exc:
        print(f"edgekit: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"edgekit: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
