"""The shape edgekit keeps: the device half never pulls TensorFlow in, no module imports itself back
through others, modules stay small, and the few things that must exist once do."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "edgekit"
MAX_MODULE_LINES = 400
HEAVY = ("tensorflow", "keras", "tf_keras")
# The device half: what a Pi imports to run, bench, inspect and verify bundles.
DEVICE_HALF = (
    "edgekit.runtime",
    "edgekit.bundle",
    "edgekit.signing",
    "edgekit.targets",
    "edgekit.defaults",
    "edgekit.progress",
    "edgekit.errors",
    "edgekit.native_output",
    # what `edgekit run --on HOST` ships to a device (edgekit/remote/payload.py)
    "edgekit.remote.agent",
    "edgekit.remote.framing",
    "edgekit.remote.facts",
    "edgekit.remote.compat",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """Every module `name` imports, at module level or inside functions: edgekit modules resolved to
    the module (a submodule when `from package import submodule`), others by their top-level name."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in MODULES else target)
    resolved = set()
    for imported in found:
        if imported.startswith("edgekit"):
            # `import edgekit.a.b` names a module; keep the longest known prefix.
            parts = imported.split(".")
            while parts and ".".join(parts) not in MODULES:
                parts.pop()
            if parts and ".".join(parts) != name:
                resolved.add(".".join(parts))
        else:
            resolved.add(imported.split(".")[0])
    return resolved


GRAPH = {name: imports_of(name) for name in MODULES}


def in_device_half(name: str) -> bool:
    return any(name == root or name.startswith(root + ".") for root in DEVICE_HALF)


def test_the_import_graph_is_read():
    """Guard the guards: the graph must see known edges, or the tests below would pass vacuously."""
    assert "edgekit.errors" in GRAPH["edgekit.bundle.files"]
    assert "numpy" in GRAPH["edgekit.runtime.session"]
    assert any("tensorflow" in deps or "keras" in deps for name, deps in GRAPH.items() if "conversion" in name)


def test_device_half_never_reaches_tensorflow_or_the_conversion_half():
    for start in (name for name in GRAPH if in_device_half(name)):
        seen, stack, parent = {start}, [start], {start: None}
        while stack:
            current = stack.pop()
            for dep in GRAPH.get(current, ()):
                if dep in HEAVY or dep.startswith("edgekit.conversion"):
                    chain = [dep, current]
                    while parent[chain[-1]] is not None:
                        chain.append(parent[chain[-1]])
                    pytest.fail(f"device half imports {dep}: {' <- '.join(chain)}")
                if dep in GRAPH and dep not in seen:
                    seen.add(dep)
                    parent[dep] = current
                    stack.append(dep)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that import each other, directly or not."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for dep in graph[node]:
            if dep not in graph:
                continue
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            groups.append(group)

    for node in graph:
        if node not in index:
            visit(node)
    return groups


def test_no_import_cycles_between_modules():
    cycles = [sorted(group) for group in strongly_connected(GRAPH) if len(group) > 1]
    assert not cycles, f"modules importing each other (imports inside functions count): {cycles}"


def test_cycle_detection_finds_a_cycle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["c", "b", "a"], ["d"]]


def test_no_module_is_over_400_lines():
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in MODULES.items()}
    too_big = {name: lines for name, lines in sizes.items() if lines > MAX_MODULE_LINES}
    assert not too_big, f"split these modules (over {MAX_MODULE_LINES} lines): {too_big}"


def files_containing(text: str) -> list[str]:
    return sorted(name for name, path in MODULES.items() if text in path.read_text(encoding="utf-8"))


def test_the_interpreters_private_api_is_touched_in_one_place():
    assert files_containing("_get_ops_details") == ["edgekit.runtime.interpreter"]


def test_one_atomic_write_family():
    """Temporary files renamed into place exist once: bundle/files.py."""
    assert files_containing("os.replace(") == ["edgekit.bundle.files"]
    assert files_containing("mkstemp(") == ["edgekit.bundle.files"]


def test_no_module_named_utils():
    assert not [name for name in MODULES if name.rsplit(".", 1)[-1] in ("utils", "helpers", "misc")]


def test_device_commands_run_with_tensorflow_unimportable(digits_bundles, tmp_path):
    """The real commands, in a process where importing TensorFlow or Keras fails."""
    bundle = digits_bundles["bundles"]["int8"]
    archive = bundle.parent / f"{bundle.name}.tar.gz"
    script = (
        "import runpy, sys\n"
        "for name in ('tensorflow', 'keras', 'tf_keras'):\n"
        "    sys.modules[name] = None  # import raises ImportError\n"
        "sys.argv = ['edgekit', *sys.argv[1:]]\n"
        "runpy.run_module('edgekit', run_name='__main__')\n"
    )
    commands = [
        ["run", str(bundle), "--repeat", "3", "--budget-ms", "100000", "--json"],
        ["bench", str(archive), "--repeat", "3", "--json"],
        ["inspect", str(archive), "--json"],
        ["verify", str(archive), "--json"],
        ["targets", "--json"],
    ]
    for command in commands:
        result = subprocess.run(
            [sys.executable, "-c", script, *command], capture_output=True, text=True, cwd=ROOT, timeout=300
        )
        assert result.returncode == 0, f"edgekit {' '.join(command)}: {result.stderr[-500:]}"
        assert result.stdout.lstrip().startswith(("{", "[")), result.stdout[:200]
