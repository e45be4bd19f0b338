#!/usr/bin/env bash
# Wheels for `edgekit device setup HOST --wheels DIR` on an emulated Debian 12 arm64 device (tests/remote):
# ai-edge-litert (the laptop venv's version), numpy, Pillow, their dependencies and pip itself, for
# CPython 3.11 on manylinux aarch64, downloaded once into .arm/wheels-arm64 (git-ignored) with the host's pip.
set -euo pipefail
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
DEST=$ROOT/.arm/wheels-arm64
LITERT=${LITERT_VERSION:+==$LITERT_VERSION}
WANT="ai-edge-litert${LITERT:->=2.3} numpy pillow pip"
if [[ -f $DEST/.complete && "$(cat "$DEST/.complete")" == "$WANT" ]]; then exit 0; fi
tmp=$DEST.tmp
rm -rf -- "$tmp"; mkdir -p "$tmp"
platforms=()
for n in $(seq 28 -1 17); do platforms+=(--platform "manylinux_2_${n}_aarch64"); done
# shellcheck disable=SC2086
"$PY" -m pip download --disable-pip-version-check --no-input -q -d "$tmp" --only-binary=:all: \
  "${platforms[@]}" --platform manylinux2014_aarch64 --python-version 3.11 --implementation cp --abi cp311 \
  --abi abi3 --abi none $WANT
echo "$WANT" >"$tmp/.complete"
rm -rf -- "$DEST"; mv -- "$tmp" "$DEST"
echo "device-wheels: $(ls "$DEST" | wc -l) wheels in $DEST ($(du -sh "$DEST" | cut -f1))" >&2
