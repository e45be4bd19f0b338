"""Ansible stdout callback `edgekit_events`: each host's result as one JSON line in the file named by
$EDGEKIT_FLEET_EVENTS, and one `done HOST` line on stdout per finished host (edgekit's progress)."""

from __future__ import annotations

import json
import os
import sys

from ansible.plugins.callback import CallbackBase

KEEP = ("rc", "stdout", "stderr", "msg", "sent", "fetched", "changed")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "edgekit_events"

    def __init__(self):
        super().__init__()
        self._events = open(os.environ["EDGEKIT_FLEET_EVENTS"], "a", encoding="utf-8")  # noqa: SIM115

    def _record(self, result, outcome):
        data = result._result
        event = {"host": result._host.get_name(), "outcome": outcome}
        event.update({key: _plain(data[key]) for key in KEEP if key in data})
        if "exception" in data and "msg" not in event:
            event["msg"] = str(data["exception"]).strip().splitlines()[-1:]
        self._events.write(json.dumps(event) + "\n")
        self._events.flush()
        sys.stdout.write(f"done {event['host']}\n")
        sys.stdout.flush()

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def v2_playbook_on_no_hosts_matched(self):
        sys.stdout.write("no hosts matched\n")
        sys.stdout.flush()


def _plain(value):
    """Ansible's tagged strings and lists as plain JSON values."""
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    return str(value)
