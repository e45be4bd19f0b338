"""3. Cold start: process start → first result of `edgekit run` on the digits bundle, vs a bare
interpreter script doing the same work by hand; and the import time of the device half.

Each round starts, in alternating order, fresh processes for:
  cli      python -m edgekit run BUNDLE IMAGE --warmup 0 --repeat 1 --json   (what a user types)
  library  python -c "from edgekit.runtime.session import run; run(...)"   (the same, without the CLI)
  bare     a hand-written ai-edge-litert script: load, decode, resize, normalize, quantize, invoke, argmax
  python   python -c pass                                                   (the interpreter's own start)
timing from just before the process is spawned to its first line on stdout (the result). With
--warmup 0 --repeat 1, `edgekit run` does three invokes and two decodes (a first invoke, one timed
invoke, one end to end pass) plus its bundle checks (SHA-256, manifest); the bare script does one of each.

Every process may write and use bytecode caches (PYTHONDONTWRITEBYTECODE is dropped), and each
command runs once untimed first: edgekit's modules are then read from `__pycache__` as an installed
package's are, rather than compiled from source on every start while the libraries' are cached.

Import times are measured in fresh processes (perf_counter around the import statement), with a
`-X importtime` breakdown of what they pull in.

Usage: python benchmarks/cold_start.py [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from workloads import ROOT, Results, alternate, bundle, ms, row  # noqa: E402

IMAGE = ROOT / "samples" / "digits" / "images" / "digit-3.png"
LIBRARY = (
    "import sys, json\n"
    "from edgekit.runtime.session import run\n"
    "report = run(sys.argv[1], [sys.argv[2]], warmup=0, repeat=1, budget_ms=1e9)\n"
    "print(json.dumps(report.to_dict()))\n"
)
BARE = (
    "import sys\n"
    "import numpy as np\n"
    "from PIL import Image\n"
    "from ai_edge_litert.interpreter import Interpreter\n"
    "interpreter = Interpreter(model_path=sys.argv[1] + '/model.tflite', num_threads=2)\n"
    "interpreter.allocate_tensors()\n"
    "inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]\n"
    "with Image.open(sys.argv[2]) as image:\n"
    "    pixels = np.asarray(image.convert('L').resize((32, 32), Image.BILINEAR), dtype=np.float32)\n"
    "scale, zero_point = inp['quantization']\n"
    "x = np.clip(np.round(pixels / np.float32(255) / np.float32(scale)) + zero_point, -128, 127)\n"
    "interpreter.set_tensor(inp['index'], x.astype(np.int8).reshape(inp['shape']))\n"
    "interpreter.invoke()\n"
    "print(int(np.argmax(interpreter.get_tensor(out['index']))))\n"
)
IMPORTS = {
    "edgekit.runtime.session": "import edgekit.runtime.session",
    "edgekit.runtime.session + ai_edge_litert": "import edgekit.runtime.session, ai_edge_litert.interpreter",
    "edgekit.cli + run command": "import edgekit.cli, edgekit.cli.run_command",
    "click": "import click",
    "rich (table output, not under --json)": "import rich.console, rich.table",
    "numpy": "import numpy",
    "ai_edge_litert.interpreter": "import ai_edge_litert.interpreter",
    "PIL.Image": "import PIL.Image",
}


# As on a device with edgekit installed: bytecode cached, no warnings filter from the caller.
ENV = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}, "PYTHONWARNINGS": ""}


def time_to_first_line(command: list[str]) -> tuple[float, float, str]:
    """(seconds to the first stdout line, seconds to exit, that line)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT, env=ENV)
    first = process.stdout.readline()
    first_at = time.perf_counter() - start
    process.stdout.read()
    process.wait()
    return first_at, time.perf_counter() - start, first.decode().strip()


def import_ms(statement: str) -> float:
    code = f"import time\nstart = time.perf_counter()\n{statement}\nprint((time.perf_counter() - start) * 1000)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=ENV, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def import_breakdown(statement: str, top: int = 8) -> list[tuple[str, float]]:
    """The modules with the largest cumulative import time (ms) under `-X importtime`."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=ENV,
        check=True,
    )
    entries = []
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.split("|")
        depth = (len(name) - len(name.lstrip())) // 2
        entries.append((name.strip(), int(cumulative) / 1000, depth))
    # Only the modules the statement asked for and their direct imports: deeper lines repeat them.
    shown = [(name, cost) for name, cost, depth in entries if depth <= 1 and not name.startswith("encodings")]
    return sorted(shown, key=lambda item: -item[1])[:top]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args(argv)
    path = str(bundle("digits-int8"))
    commands = {
        "cli": [sys.executable, "-m", "edgekit", "run", path, str(IMAGE), "--warmup", "0", "--repeat", "1"]
        + ["--budget-ms", "1000000", "--json"],
        "library": [sys.executable, "-c", LIBRARY, path, str(IMAGE)],
        "bare": [sys.executable, "-c", BARE, path, str(IMAGE)],
        "python": [sys.executable, "-c", "print('ready')"],
    }
    first = {name: [] for name in commands}
    total = {name: [] for name in commands}
    answers = {}
    for command in commands.values():  # untimed: writes the bytecode caches, warms the page cache
        time_to_first_line(command)
    for index, _ in alternate(args.rounds):
        names = list(commands)
        names = names[index % len(names) :] + names[: index % len(names)]  # rotate who starts first
        for name in names:
            first_at, exit_at, line = time_to_first_line(commands[name])
            first[name].append(first_at * 1000)
            total[name].append(exit_at * 1000)
            answers[name] = line[:60]
    median = {name: float(np.median(values)) for name, values in first.items()}
    results = Results("cold_start")
    paired = np.asarray(first["cli"]) / np.asarray(first["bare"])
    results.add(
        row(
            "3",
            "cold start to first result: `python -m edgekit run` / bare script",
            "digits-int8",
            2,
            ms(median["cli"]),
            ms(median["bare"]),
            float(np.median(paired)),
            "report",
            None,
            median_first_result_ms=median,
            median_exit_ms={name: float(np.median(values)) for name, values in total.items()},
            rounds=args.rounds,
            first_result_ms=first,
            answers=answers,
        )
    )
    results.add(
        row(
            "3",
            "cold start without the CLI: `run()` from Python / bare script",
            "digits-int8",
            2,
            ms(median["library"]),
            ms(median["bare"]),
            float(np.median(np.asarray(first["library"]) / np.asarray(first["bare"]))),
            "report",
            None,
            cli_layer_ms=median["cli"] - median["library"],
            python_startup_ms=median["python"],
        )
    )

    imports = {}
    for label, statement in IMPORTS.items():
        imports[label] = float(np.median([import_ms(statement) for _ in range(max(3, args.rounds // 2))]))
    breakdown = {
        label: import_breakdown(statement)
        for label, statement in IMPORTS.items()
        if label in ("edgekit.runtime.session", "edgekit.cli + run command")
    }
    results.add(
        row(
            "3",
            "import time of the device half (`import edgekit.runtime.session`)",
            "-",
            None,
            ms(imports["edgekit.runtime.session"]),
            f"numpy alone {ms(imports['numpy'])}",
            imports["edgekit.runtime.session"] / imports["numpy"],
            "report",
            None,
            import_ms=imports,
            importtime_top=breakdown,
        )
    )
    results.add(
        row(
            "3",
            "import time of the CLI and the run command (`import edgekit.cli, edgekit.cli.run_command`)",
            "-",
            None,
            ms(imports["edgekit.cli + run command"]),
            f"click {ms(imports['click'])}",
            None,
            "report",
            None,
        )
    )
    results.notes.append(
        "cold start medians (ms, process spawn → first stdout line): "
        + ", ".join(f"{name} {value:.0f}" for name, value in median.items())
    )
    results.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
