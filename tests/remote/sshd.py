"""Throwaway OpenSSH servers on loopback addresses (127.0.0.x only), for tests that cross real SSH.

    with Sshd("127.0.0.2", python=wrapper) as device:
        subprocess.run(["ssh", "-F", device.ssh_config, device.name, "python3 -V"])

Each server has its own temporary folder: a fresh host key, a client key pair whose public half is the
only authorized key, a known_hosts with exactly that host key, and an ssh_config whose `Host NAME
ADDRESS` entry uses them (BatchMode, StrictHostKeyChecking yes). The session is a "device": HOME is a
temporary folder whose ~/.profile puts ~/bin first on PATH, and `python=` becomes ~/bin/python3. sshd runs
in the foreground under `timeout` (it dies by itself after `lifetime_s`), and stop() ends it and every
session it started. Needs root (sshd switches to the user) and openssh-server (the Makefile installs it).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
DEVICE_SHELL = """#!/bin/sh
# The device's session: its own HOME, then what the client asked for (sftp included).
HOME={home}; export HOME
cd "$HOME" || exit 1
case "$SSH_ORIGINAL_COMMAND" in
  internal-sftp|*sftp-server) exec {sftp} ;;
  "") exec /bin/sh -i ;;
esac
exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"
"""
PROFILE = 'PATH="$HOME/bin:$PATH"; export PATH\n'


def sshd_available() -> bool:
    return os.access(SSHD, os.X_OK) and shutil.which("ssh") is not None and shutil.which("ssh-keygen") is not None


def free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (sshd's per-connection processes call setsid, so no group kill)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), ()):
            found.append(child)
            stack.append(child)
    return found


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


class Sshd:
    """One loopback sshd whose sessions look like a device (see the module's docstring)."""

    def __init__(
        self,
        address: str = "127.0.0.2",
        python: str | os.PathLike[str] | None = None,
        name: str | None = None,
        lifetime_s: float = 900,
        extra_config: str = "",
        profile: str = "",
    ):
        if not ipaddress.ip_address(address).is_loopback:
            raise ValueError(f"test servers listen on loopback addresses only, not {address}")
        self.address = address
        self.name = name or f"device-{address.replace('.', '-')}"
        self.lifetime_s = lifetime_s
        self.extra_config = extra_config
        self.dir = Path(tempfile.mkdtemp(prefix="edgekit-sshd-"))
        self.home = self.dir / "home"
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.log = self.dir / "sshd.log"
        self.ssh_config = self.dir / "ssh_config"
        self.known_hosts = self.dir / "known_hosts"
        self.client_key = self.dir / "client_key"
        self.host_key = self.dir / "host_key"
        (self.home / "bin").mkdir(parents=True)
        (self.home / ".profile").write_text(PROFILE + profile)
        if python is not None:
            self.set_python(python)

    # --- the device ---------------------------------------------------------------------------

    def set_python(self, python: str | os.PathLike[str] | None) -> None:
        """Make `python` the device's python3 (None: the device has none of its own in ~/bin)."""
        link = self.home / "bin" / "python3"
        link.unlink(missing_ok=True)
        if python is not None:
            link.symlink_to(Path(python).absolute())  # not resolved: a venv's python is a link

    @property
    def target(self) -> str:
        """`root@ADDRESS:PORT`, the form HOST takes without an SSH config name."""
        return f"root@{self.address}:{self.port}"

    def ssh(self, command: str, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
        """Run a command on the device with plain ssh (not edgekit's transport)."""
        return subprocess.run(
            ["ssh", "-F", str(self.ssh_config), self.name, command],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            **kwargs,
        )

    # --- the server ---------------------------------------------------------------------------

    def _keygen(self, path: Path) -> None:
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgekit-test", "-f", str(path)],
            check=True,
            stdin=subprocess.DEVNULL,
            capture_output=True,
        )

    def write_known_hosts(self, host_key_pub: Path | None = None) -> None:
        """known_hosts holding `host_key_pub` (default: this server's real key) for the server's address."""
        key = (host_key_pub or self.host_key.with_suffix(".pub")).read_text().split()[:2]
        self.known_hosts.write_text(f"[{self.address}]:{self.port} {' '.join(key)}\n")

    def start(self) -> Sshd:
        if not sshd_available():
            raise RuntimeError("openssh-server and openssh-client are needed (make install-ssh)")
        self._keygen(self.host_key)
        self._keygen(self.client_key)
        shutil.copy(self.client_key.with_suffix(".pub"), self.dir / "authorized_keys")
        shell = self.dir / "device-shell"
        shell.write_text(DEVICE_SHELL.format(home=self.home, sftp=SFTP_SERVER))
        shell.chmod(0o755)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation folder
        for _ in range(5):
            self.port = free_port(self.address)
            (self.dir / "sshd_config").write_text(
                f"ListenAddress {self.address}:{self.port}\n"
                f"HostKey {self.host_key}\n"
                f"PidFile {self.dir / 'sshd.pid'}\n"
                f"AuthorizedKeysFile {self.dir / 'authorized_keys'}\n"
                "UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nPubkeyAuthentication yes\n"
                "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                "Subsystem sftp internal-sftp\n"
                f"ForceCommand {shell}\n"
                "PrintMotd no\nPrintLastLog no\nMaxSessions 50\nMaxStartups 50:30:100\nLogLevel ERROR\n"
                "ClientAliveInterval 10\nClientAliveCountMax 3\n" + self.extra_config
            )
            command = ["timeout", "-s", "TERM", str(int(self.lifetime_s)), SSHD, "-D", "-e"]
            with open(self.log, "ab") as log:
                self.process = subprocess.Popen(
                    [*command, "-f", str(self.dir / "sshd_config")],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            if self._wait_listening(5.0):
                break
            self.process.kill()
            self.process.wait()
        else:
            raise RuntimeError(f"sshd did not start on {self.address}: {self.log.read_text()[-2000:]}")
        self.write_known_hosts()
        self.ssh_config.write_text(
            f"Host {self.name} {self.address}\n"
            f"  HostName {self.address}\n  Port {self.port}\n  User root\n"
            f"  IdentityFile {self.client_key}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {self.known_hosts}\n  GlobalKnownHostsFile /dev/null\n"
            "  StrictHostKeyChecking yes\n  BatchMode yes\n  LogLevel ERROR\n"
        )
        return self

    def _wait_listening(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with socket.create_connection((self.address, self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def kill_sessions(self) -> None:
        """Cut every open connection (the server keeps listening): a dropped link, as both ends see it.
        Only sshd's own session processes die; what they ran sees its stdin end, as after a real drop."""
        if self.process is not None:
            listeners = self._listeners()
            sessions = [p for p in descendants(self.process.pid) if p not in listeners and _comm(p) == "sshd"]
            signal_all(sessions, signal.SIGKILL)

    def _listeners(self) -> set[int]:
        """The timeout process's sshd (the one listening)."""
        return {pid for pid in descendants(self.process.pid) if self._parent(pid) == self.process.pid}

    @staticmethod
    def _parent(pid: int) -> int | None:
        try:
            return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            return None

    def stop(self) -> None:
        """Stop the server and every session it started; remove its folder."""
        if self.process is not None:
            everything = descendants(self.process.pid)
            signal_all([self.process.pid, *everything], signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            signal_all(everything, signal.SIGKILL)
            self.process = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Sshd:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info) -> None:
        self.stop()
