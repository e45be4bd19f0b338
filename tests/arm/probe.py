"""Runs inside an emulated ARM Python (or a reference x86 one): feeds bundles through the device half
and prints raw output tensors as JSON, so the test can compare architectures bit for bit.

Usage: PYTHON probe.py CASES.json   (CASES: [{"bundle": path, "inputs": [paths], "runtime": name}])
"""

import json
import platform
import sys
import time

from edgekit.bundle import open_bundle
from edgekit.runtime.preprocess import collect_input_files
from edgekit.runtime.session import Session


def probe(case):
    with open_bundle(case["bundle"]) as bundle:
        session = Session(bundle, threads=1, runtime=case["runtime"])
        outputs = []
        for path in collect_input_files(case["inputs"]):
            session.set_input(session.prepare(path))
            session.invoke()
            raw = session.outputs()[0]
            outputs.append({"input": str(path), "dtype": str(raw.dtype), "values": raw.reshape(-1).tolist()})
        timings = []
        for _ in range(case.get("repeat", 0)):  # optional: invoke latency (emulated ms when under QEMU)
            start = time.perf_counter()
            session.invoke()
            timings.append((time.perf_counter() - start) * 1000)
        return {
            "bundle": case["bundle"],
            "runtime": session.runtime.name,
            "version": session.runtime.version,
            "outputs": outputs,
            "invoke_ms": sorted(timings)[len(timings) // 2] if timings else None,
        }


def main():
    with open(sys.argv[1]) as handle:
        cases = json.load(handle)
    results = [probe(case) for case in cases]
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
    json.dump({"arch": platform.machine(), "heavy_modules": heavy, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
