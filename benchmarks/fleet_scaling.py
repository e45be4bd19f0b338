"""Fleet scaling: the wall time of `edgekit run BUNDLE --on @INVENTORY` for 1, 2 and 3 devices.

Three identical emulated devices (Debian 12 arm64 Python with ai-edge-litert under QEMU, behind
throwaway loopback sshd servers: tests/remote/sshd.py) in one Ansible inventory; `--limit` picks the
first N. Each is warmed once (edgekit's device half and the bundle cached there), so what is timed is
a routine fleet run: Ansible's start, one SSH connection per device, the device's own run, the
report back. Rounds alternate the order (1,2,3 then 3,2,1); the median of each is reported with its
ratio to one device. A/A control: the one-device run is timed twice per round (ratio ≈ 1 is the noise).

Caveat, and the reason for the ratios: here the "devices" share this machine's cores (QEMU), so
their runs compete for CPU; on real devices each has its own, and only Ansible's side grows.

Usage: python benchmarks/fleet_scaling.py [--rounds N] [--bundle PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from workloads import ROOT, Results, bundle, row  # noqa: E402

sys.path.insert(0, str(ROOT))

from edgekit.fleet.commands import run_on_fleet  # noqa: E402
from tests.remote.devices import device_python  # noqa: E402
from tests.remote.sshd import Sshd  # noqa: E402

HOSTS = {"pi-1": "127.0.0.71", "pi-2": "127.0.0.72", "pi-3": "127.0.0.73"}
KIND = "arm64-litert"


def timed_run(inventory: Path, bundle_path: Path, count: int) -> float:
    limit = ":".join(list(HOSTS)[:count])
    started = time.perf_counter()
    report = run_on_fleet(inventory, bundle_path, limit=limit, repeat=20, warmup=2)
    wall = time.perf_counter() - started
    bad = [(host.host, host.status, host.error) for host in report.hosts if host.status != "ok"]
    if bad or len(report.hosts) != count:
        raise SystemExit(f"fleet run failed: {bad}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bundle", type=Path, default=None, help="Default: the digits int8 workload of make bench.")
    args = parser.parse_args()
    bundle_path = args.bundle or bundle("digits-int8")
    results = Results("fleet_scaling")
    folder = Path(tempfile.mkdtemp(prefix="edgekit-fleet-bench-"))
    python = device_python(KIND, folder)
    devices = {}
    try:
        for name, address in HOSTS.items():
            devices[name] = Sshd(address, name=name, lifetime_s=900).start()
        lines = ["[pis]"]
        for name, device in devices.items():
            lines.append(
                f"{name} ansible_host={device.address} ansible_user=root ansible_python_interpreter={python} "
                f"ansible_ssh_common_args='-F {device.ssh_config}'"
            )
        inventory = folder / "inventory.ini"
        inventory.write_text("\n".join(lines) + "\n")
        timed_run(inventory, bundle_path, 3)  # warm: payload and bundle cached on every device
        walls: dict[str, list[float]] = {"1": [], "1 again": [], "2": [], "3": []}
        for index in range(args.rounds):
            order = ["1", "1 again", "2", "3"] if index % 2 == 0 else ["3", "2", "1 again", "1"]
            for key in order:
                walls[key].append(timed_run(inventory, bundle_path, int(key[0])))
                print(f"[fleet_scaling] round {index + 1}: {key} device(s) {walls[key][-1]:.2f} s", flush=True)
    finally:
        for device in devices.values():
            device.stop()
    one = statistics.median(walls["1"])
    for key in ("1 again", "2", "3"):
        median = statistics.median(walls[key])
        count = int(key[0])
        results.add(
            row(
                "fleet",
                "wall s, run --on @INVENTORY" + (" (A/A control)" if key == "1 again" else ""),
                f"digits-int8 on {count} emulated {KIND} device(s)",
                None,
                f"{median:.2f} s",
                f"{one:.2f} s (1 device)",
                median / one,
                "A/A ≈ 1" if key == "1 again" else f"< {count} (parallel, not one after another)",
                (0.8 < median / one < 1.25) if key == "1 again" else median / one < count,
                walls_s=[round(w, 3) for w in walls[key]],
                one_device_walls_s=[round(w, 3) for w in walls["1"]],
            )
        )
    results.notes.append(
        "The emulated devices share this machine's 2 cores, so their runs compete for CPU; on real devices each "
        "has its own and only the laptop's Ansible side grows with the fleet."
    )
    results.write()


if __name__ == "__main__":
    main()
