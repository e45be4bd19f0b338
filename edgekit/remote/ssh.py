"""The transport: the user's own OpenSSH client as subprocesses, so ~/.ssh/config, ProxyJump, agents and
known_hosts work exactly as in their terminal.

One multiplexed connection per device (ControlMaster), kept `CONTROL_PERSIST_S` for the next
invocation. BatchMode: edgekit never prompts. Host keys are checked as the user's configuration says;
edgekit adds no StrictHostKeyChecking option of its own, so a host key is never accepted silently.
Every failure becomes one `DeviceError` (exit 5) naming the host and the cause.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from edgekit.errors import DeviceError, UsageError

CONTROL_DIR_ENV = "EDGEKIT_SSH_CONTROL_DIR"
CONTROL_PERSIST_S = 60
CONNECT_TIMEOUT_S = 10
SSH_FAILED = 255  # ssh's own exit code for connection and authentication errors

# (pattern in ssh's stderr, cause shown to the user); the first match wins.
CAUSES = (
    (r"could not resolve hostname|name or service not known|no address associated|temporary failure in name",
     "unknown host (the name does not resolve)"),
    (r"remote host identification has changed|host key for .* has changed|host key mismatch",
     "host key mismatch: the device's key is not the one in known_hosts (if it was reinstalled, check and remove "
     "the old key with ssh-keygen -R)"),
    (r"host key verification failed|no .* host key is known",
     "host key not known: connect once with `ssh HOST` to check and accept it (edgekit never accepts one itself)"),
    (r"permission denied|too many authentication failures|no supported authentication",
     "authentication failed (permission denied): check your SSH key or agent"),
    (r"connection refused", "connection refused (no SSH server on that address and port)"),
    (r"connection timed out|operation timed out", "connection timed out"),
    (r"no route to host|network is unreachable", "unreachable (no route to host)"),
    (r"closed by remote host|connection reset|broken pipe|connection closed|server not responding|"
     r"connection to .* closed|client_loop: send disconnect",
     "the connection dropped"),
)  # fmt: skip


@dataclass(frozen=True)
class Host:
    """A device as the user named it: `[user@]host[:port]` or a name from the SSH config."""

    text: str
    host: str
    user: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        return self.text


def parse_host(text: str) -> Host:
    """`pi@raspberrypi.local:2222`, `jetson`, `[fe80::1]:22`: refused when it could be read as an option."""
    raw = text.strip()
    user, at, rest = raw.rpartition("@")
    if not at:
        user, rest = "", raw
    port = None
    if rest.startswith("[") and "]" in rest:  # [IPv6]:port
        host, _, tail = rest[1:].partition("]")
        if tail:
            if not tail.startswith(":") or not tail[1:].isdigit():
                raise UsageError(f"--on {text!r}: expected [user@]host[:port]")
            port = int(tail[1:])
    elif rest.count(":") == 1:
        host, _, number = rest.partition(":")
        if not number.isdigit():
            raise UsageError(f"--on {text!r}: the port must be a number")
        port = int(number)
    else:
        host = rest
    if not host or host.startswith("-") or user.startswith("-") or re.search(r"[\s'\"`$;&|<>\\]", raw):
        raise UsageError(f"--on {text!r}: expected [user@]host[:port] or a name from the SSH config")
    if port is not None and not 0 < port < 65536:
        raise UsageError(f"--on {text!r}: port {port} is out of range")
    return Host(raw, host, user or None, port)


def control_dir() -> Path:
    """Where the multiplexed connections' sockets live: private to this user (short: sockets have a
    ~100-byte path limit)."""
    chosen = os.environ.get(CONTROL_DIR_ENV)
    if chosen:
        folder = Path(chosen)
    else:
        runtime = os.environ.get("XDG_RUNTIME_DIR")
        folder = (
            Path(runtime) / "edgekit-ssh" if runtime else Path(tempfile.gettempdir()) / f"edgekit-ssh-{os.getuid()}"
        )
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise DeviceError(f"{folder}: SSH control folder must be owned by you and private (chmod 700)")
    return folder


def failure(host: Host, stderr: str, returncode: int | None) -> DeviceError:
    """One line for what went wrong talking to `host`, from ssh's own words."""
    text = " ".join(stderr.split())
    lowered = text.lower()
    for pattern, cause in CAUSES:
        if re.search(pattern, lowered):
            return DeviceError(f"{host}: {cause.replace('HOST', str(host))}")
    last = [line.strip() for line in stderr.splitlines() if line.strip()]
    detail = last[-1] if last else f"exit code {returncode}"
    return DeviceError(f"{host}: ssh failed ({detail})")


class Connection:
    """ssh to one host, multiplexed: `open()` once, then any number of `run()`s share the connection."""

    def __init__(self, host: str | Host, ssh_config: str | os.PathLike[str] | None = None):
        self.host = host if isinstance(host, Host) else parse_host(host)
        self.ssh_config = Path(ssh_config) if ssh_config is not None else None
        if self.ssh_config is not None and not self.ssh_config.is_file():
            raise UsageError(f"--ssh-config {self.ssh_config}: no such file")
        self.control_path = control_dir() / "%C"

    def ssh_command(self, *options: str) -> list[str]:
        command = ["ssh"]
        if self.ssh_config is not None:
            command += ["-F", str(self.ssh_config)]
        command += [
            "-o", "BatchMode=yes",
            "-o", f"ControlPath={self.control_path}",
            "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}",
            "-o", "ServerAliveInterval=5",
            "-o", "ServerAliveCountMax=3",
            *options,
        ]  # fmt: skip
        if self.host.port is not None:
            command += ["-p", str(self.host.port)]
        if self.host.user is not None:
            command += ["-l", self.host.user]
        return [*command, "--", self.host.host]

    def open(self) -> None:
        """Reuse this host's live master connection, or start one that outlives us by CONTROL_PERSIST_S."""
        check = subprocess.run(
            [*self.ssh_command("-O", "check")], stdin=subprocess.DEVNULL, capture_output=True, timeout=30
        )
        if check.returncode == 0:
            return
        # The master goes to the background once authenticated (-f) and keeps its stderr: a file, not a
        # pipe we would wait on.
        with tempfile.TemporaryFile() as errors:
            master = subprocess.run(
                self.ssh_command("-o", "ControlMaster=yes", "-o", f"ControlPersist={CONTROL_PERSIST_S}", "-N", "-f"),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                timeout=CONNECT_TIMEOUT_S * 3 + 30,
            )
            errors.seek(0)
            message = errors.read().decode("utf-8", "replace")
        if master.returncode != 0:
            raise failure(self.host, message, master.returncode)

    def start(self, script: str) -> subprocess.Popen:
        """Run a POSIX sh script on the device in a login shell (so ~/.profile's PATH applies), with
        binary pipes for stdin, stdout and stderr."""
        remote = "exec sh -lc " + shlex.quote(script)
        return subprocess.Popen(
            [*self.ssh_command("-o", "ControlMaster=no", "-T"), remote],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def run(
        self, script: str, stdin: bytes | IO[bytes] | None = None, timeout: float = 600
    ) -> subprocess.CompletedProcess:
        """Run a script and wait for it; stdin from bytes or a file."""
        remote = "exec sh -lc " + shlex.quote(script)
        options = {"input": stdin} if isinstance(stdin, bytes) else {"stdin": stdin or subprocess.DEVNULL}
        return subprocess.run(
            [*self.ssh_command("-o", "ControlMaster=no", "-T"), remote], capture_output=True, timeout=timeout, **options
        )

    def close(self) -> None:
        """End the master connection now (it would otherwise linger CONTROL_PERSIST_S)."""
        subprocess.run(self.ssh_command("-O", "exit"), stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
