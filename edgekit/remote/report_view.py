"""A report's JSON read like the report object: the remote run brings `to_dict()` back, and the commands'
own `render()` draws it, so a remote table is the local table by construction."""

from __future__ import annotations

from typing import Any


class ReportView:
    """Attribute access over a report dict: nested dicts and lists become views and tuples, a key the
    report left out (an optional field) reads as None, and `runtime` is the {name, version} pair the
    report objects carry (their JSON flattens it into "runtime" and "runtime_version")."""

    def __init__(self, data: dict[str, Any]):
        self._data = data

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        data = self._data
        if name == "runtime" and isinstance(data.get("runtime"), str):
            return ReportView({"name": data["runtime"], "version": data.get("runtime_version")})
        if name == "over_budget_rows" and "rows" in data:
            return tuple(view(row) for row in data["rows"] if row.get("within_budget") is False)
        return view(data.get(name))

    def to_dict(self) -> dict[str, Any]:
        return self._data


def view(value: Any) -> Any:
    if isinstance(value, dict):
        return ReportView(value)
    if isinstance(value, list):
        return tuple(view(v) for v in value)
    return value
