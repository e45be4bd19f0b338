"""Ansible action `edgekit_device`: put edgekit's files on one device and run one command there.

It runs on the laptop and talks to the device through the host's connection only (the user's OpenSSH
with their inventory's settings), never through an Ansible module: a module would start the device's
Python once more per step, which costs seconds on a small board. Files listed in `cached` land under
`~/.cache/edgekit/` named by their content and are sent only when missing there (under a temporary
name first, renamed when complete, so a half-sent file is never used); `scratch` files go to a
temporary folder of this run, removed afterwards. In `argv`, `{cache}`, `{scratch}` and `{home}` stand
for those folders on the device. The command runs under `interpreter`.
"""

from __future__ import annotations

import os
import secrets
import shlex

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

CACHE = ".cache/edgekit"


class ActionModule(ActionBase):
    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        cached = list(args.get("cached") or [])
        scratch = list(args.get("scratch") or [])
        interpreter = _interpreter_words(args.get("interpreter"))

        probe = ["cd && pwd", f"mkdir -p {CACHE}"]
        for item in cached:
            name = shlex.quote(item["name"])
            probe.append(f"test -f {CACHE}/{name} && echo have {name}")
        if scratch or args.get("fetch"):
            probe.append(f"mktemp -d {CACHE}/run.XXXXXXXX")
        answer = self._shell("; ".join(probe) + "; true")
        lines = answer["stdout"].splitlines()
        if not lines or not lines[0].startswith("/"):
            raise AnsibleActionFail(f"cannot find the home folder on the device: {_last_line(answer)}")
        home = lines[0]
        have = {line[5:] for line in lines if line.startswith("have ")}
        work = f"{home}/{lines[-1]}" if (scratch or args.get("fetch")) else None
        cache = f"{home}/{CACHE}"

        sent = []
        try:
            renames = []
            for item in cached:
                if item["name"] in have:
                    continue
                partial = f"{cache}/.{item['name']}.{secrets.token_hex(4)}.partial"
                self._put(item["src"], partial)
                renames.append(f"mv -f {shlex.quote(partial)} {shlex.quote(cache + '/' + item['name'])}")
                sent.append(item["name"])
            if renames:
                self._shell(" && ".join(renames), check=True)
            folders = sorted({item["name"].rpartition("/")[0] for item in scratch} - {""})
            if folders:
                self._shell("mkdir -p " + " ".join(shlex.quote(f"{work}/{folder}") for folder in folders), check=True)
            for item in scratch:
                self._put(item["src"], f"{work}/{item['name']}")

            words = [_expand(word, home=home, cache=cache, scratch=work) for word in args.get("argv") or []]
            command = " ".join(shlex.quote(word) for word in [*interpreter, *words])
            ran = self._shell(f"cd && {command}")
            fetched = self._fetch_outputs(work, args.get("fetch")) if args.get("fetch") else []
        finally:
            if work is not None:
                self._shell(f"rm -rf {shlex.quote(work)}")
        result.update(
            failed=False,  # edgekit's exit code is the verdict (3 over budget, 4 refused): Ansible must not judge rc
            changed=bool(sent),
            sent=sent,
            fetched=fetched,
            rc=ran["rc"],
            stdout=ran["stdout"],
            stderr=ran["stderr"],
        )
        return result

    def _shell(self, command, check=False):
        answer = self._low_level_execute_command(command, sudoable=False)
        if check and answer["rc"] != 0:
            raise AnsibleActionFail(f"on the device: {_last_line(answer)}")
        return answer

    def _put(self, source, destination):
        if not os.path.isfile(source):
            raise AnsibleActionFail(f"{source}: no such file on this machine")
        self._connection.put_file(source, destination)

    def _fetch_outputs(self, work, spec):
        """Bring back the files the command wrote under {scratch}/<folder>."""
        folder = f"{work}/{spec['folder']}"
        listing = self._shell(f"test -d {shlex.quote(folder)} && ls -1 {shlex.quote(folder)}; true")
        names = [name for name in listing["stdout"].splitlines() if name and "/" not in name]
        os.makedirs(spec["dest"], exist_ok=True)
        for name in names:
            self._connection.fetch_file(f"{folder}/{name}", os.path.join(spec["dest"], name))
        return names


def _interpreter_words(value):
    # Ansible's own "auto" discovery values mean "whatever python3 is" to a command run by hand.
    if not value or str(value).startswith("auto"):
        return ["python3"]
    return shlex.split(str(value))


def _expand(word, home, cache, scratch):
    word = str(word)
    if "{scratch}" in word and scratch is None:
        raise AnsibleActionFail(f"{word}: no scratch folder was asked for")
    return word.replace("{cache}", cache).replace("{scratch}", scratch or "").replace("{home}", home)


def _last_line(answer):
    text = (answer.get("stderr") or answer.get("stdout") or "").strip()
    return text.splitlines()[-1] if text else f"exit {answer.get('rc')}"
