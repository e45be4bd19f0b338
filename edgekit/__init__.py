"""edgekit: take a trained model to a Raspberry Pi, a Jetson or an x86 box, and prove it runs fast enough.

The public API has the CLI's names. It is loaded lazily so that `import edgekit` on a device never
pulls in TensorFlow: only `convert()` needs it.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.2.0"

_API = {
    "convert": ("edgekit.conversion.pipeline", "convert"),
    "run": ("edgekit.runtime.session", "run"),
    "bench": ("edgekit.runtime.benchmark", "bench"),
    "inspect": ("edgekit.runtime.inspect_model", "inspect"),
    "debug": ("edgekit.conversion.debug", "debug"),
    "verify": ("edgekit.signing", "verify_bundle"),
    "sign": ("edgekit.signing", "sign_bundle"),
    "keygen": ("edgekit.signing", "generate_keypair"),
    "open_bundle": ("edgekit.bundle", "open_bundle"),
    "list_targets": ("edgekit.targets", "list_targets"),
    "get_target": ("edgekit.targets", "get_target"),
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        module_name, attr = _API[name]
        return getattr(importlib.import_module(module_name), attr)
    raise AttributeError(f"module 'edgekit' has no attribute {name!r}")
