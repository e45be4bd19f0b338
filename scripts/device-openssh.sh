#!/usr/bin/env bash
# OpenSSH client and server from Debian's packages, for the remote tests' throwaway loopback sshd
# servers (tests/remote/sshd.py). Installing openssh-server must not start the system's sshd on port
# 22: a policy-rc.d that refuses service starts is in place for the install only.
set -euo pipefail
if command -v ssh >/dev/null && command -v ssh-keygen >/dev/null && [[ -x /usr/sbin/sshd && -x /usr/lib/openssh/sftp-server ]]; then
  exit 0
fi
as_root() { if [[ $EUID == 0 ]]; then "$@"; else sudo "$@"; fi; }
policy=/usr/sbin/policy-rc.d
added=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
  as_root chmod 755 "$policy"
  added=1
fi
trap '[[ $added == 1 ]] && as_root rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
as_root apt-get update -q >/dev/null
as_root apt-get install -y -q -o DPkg::Lock::Timeout=300 openssh-client openssh-server openssh-sftp-server >/dev/null
echo "device-openssh: $(ssh -V 2>&1)" >&2
