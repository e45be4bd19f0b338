"""Runs inside an emulated ARM Python (or a reference x86 one): feeds bundles through the device half
and prints every raw output tensor of every sample as JSON (one entry per sample and output), so the
test can compare architectures output by output.

Usage: PYTHON probe.py CASES.json
  CASES: [{"bundle": path, "inputs": [sample, ...], "runtime": name}]; a sample is a path (image,
  .npy, .npz keyed by input name, or a folder of them) or an object {input name: path}.
"""

import json
import platform
import sys
import time

from edgekit.bundle import open_bundle
from edgekit.runtime.samples import collect_samples, sample_name
from edgekit.runtime.session import Session


def probe(case):
    with open_bundle(case["bundle"]) as bundle:
        session = Session(bundle, threads=1, runtime=case["runtime"])
        outputs = []  # one entry per (sample, output), samples in order, outputs in the manifest's order
        for index, sample in enumerate(collect_samples(case["inputs"])):
            session.set_input(session.prepare_sample(sample))
            session.invoke()
            for spec, raw in zip(bundle.manifest.outputs, session.outputs()):
                outputs.append(
                    {
                        "input": sample_name(sample, index),
                        "name": spec.name,
                        "dtype": str(raw.dtype),
                        "values": raw.reshape(-1).tolist(),
                    }
                )
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
