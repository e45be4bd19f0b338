#!/usr/bin/env bash
# Build emulated ARM CPython 3.11 userlands under <repo>/.arm/ (git-ignored).
#
# Usage: scripts/arm-sysroot.sh [--force] [--check] [--clean] [TARGET...]
#   TARGET   any of: arm64-litert arm64-tflite-runtime armv7-tflite-runtime
#            (default: all three)
#   --force  ignore the stage stamps and rebuild the selected targets
#   --check  re-run the smoke test of each launcher even if it passed before
#   --clean  remove .arm/ and exit
#
# Result (for each TARGET): a drop-in `python3` at .arm/bin/python-TARGET that
# runs Debian 12's own ARM python3.11 under qemu-user (no binfmt needed), with
# PYTHONPATH = repo root + .arm/site-TARGET (+ Debian dist-packages on armhf).
# Launcher environment: EDGEKIT_EMULATED=1, EDGEKIT_EMULATED_CPU=<qemu cpu>,
# EDGEKIT_EMULATED_ARCH=<aarch64|armv7l>; the CPU follows QEMU_CPU when set
# (defaults: cortex-a72 for arm64, cortex-a7 for armv7). The host's PYTHONPATH
# is not inherited (x86 code); EDGEKIT_ARM_PYTHONPATH is appended instead.
# sys.executable is the launcher itself, so subprocesses re-enter the emulator.
#
# Only Debian packages (apt-get) and PyPI (the host's pip) are used. The
# foreign apt architectures are enabled only while the .debs are downloaded and
# are removed again (plus `apt-get update`) on exit, also on failure.
# Every stage has a stamp under .arm/.stamps, so a second run takes seconds.
set -Eeuo pipefail

ROOT=$(cd -- "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/.." && pwd)
ARM=$ROOT/.arm
STAMPS=$ARM/.stamps
CPUINFO_DIR=$ROOT/scripts/arm-cpuinfo
PY=${PYTHON:-python3}          # host interpreter: runs pip, the resolver, compileall
REV=2                          # bump to invalidate every stamp

ALL_TARGETS=(arm64-litert arm64-tflite-runtime armv7-tflite-runtime)

# Debian packages unpacked into each sysroot (their Depends/Pre-Depends
# closure is resolved below, first alternative of each group).
SEEDS_COMMON="python3.11-minimal libpython3.11-minimal libpython3.11-stdlib
  libc6 libgcc-s1 libstdc++6 zlib1g libffi8 libssl3 libexpat1 libbz2-1.0
  liblzma5 libsqlite3-0 media-types"
declare -A SEEDS=(
  [arm64]="$SEEDS_COMMON"
  [armhf]="$SEEDS_COMMON python3-numpy python3-pil libjpeg62-turbo")
# Dependencies never needed to run python from an unpacked tree.
APT_BLOCK="dpkg perl-base perl tar install-info debconf debconf-2.0 cdebconf
  tzdata sysvinit-utils lsb-base readline-common python3-tk python3-pil.imagetk"

# PyPI requirements per site dir; LITERT_VERSION (the Makefile passes the x86 venv's) pins the
# emulated ai-edge-litert to the one it is compared with. armv7: PyPI has no armv7 numpy/Pillow wheels,
# so tflite-runtime goes in without deps and numpy/Pillow come from Debian.
declare -A PIP=(
  [arm64-litert]="ai-edge-litert${LITERT_VERSION:+==$LITERT_VERSION} numpy pillow click rich"
  [arm64-tflite-runtime]="tflite-runtime==2.14.0 numpy<2 pillow click rich"
  [armv7-tflite-runtime]="click rich")
declare -A PIP_NODEPS=(
  [armv7-tflite-runtime]="tflite-runtime==2.14.0")

log() { printf 'arm-sysroot: %s\n' "$*" >&2; }
die() { printf 'arm-sysroot: ERROR: %s\n' "$*" >&2; exit 1; }
on_err() {
  local rc=$? cmd=${BASH_COMMAND%%$'\n'*}
  printf 'arm-sysroot: ERROR: command failed (line %s, exit %s): %s\n' "${BASH_LINENO[0]}" "$rc" "$cmd" >&2
}
trap on_err ERR
trap 'exit 130' INT TERM

usage() { sed -n '2,/^set -E/{/^set -E/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

FORCE=0 CHECK=0 TARGETS=()
for a in "$@"; do
  case $a in
    --force) FORCE=1 ;;
    --check) CHECK=1 ;;
    --clean) rm -rf -- "$ARM"; log "removed $ARM"; exit 0 ;;
    -h|--help) usage; exit 0 ;;
    arm64-litert|arm64-tflite-runtime|armv7-tflite-runtime) TARGETS+=("$a") ;;
    *) die "unknown argument: $a (see --help)" ;;
  esac
done
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=("${ALL_TARGETS[@]}")

# --- helpers ---------------------------------------------------------------
arch_of() { [[ $1 == armv7-* ]] && echo armhf || echo arm64; }       # debian arch
machine_of() { [[ $1 == armhf ]] && echo armv7l || echo aarch64; }   # uname -m / wheel tag
qemu_of() { [[ $1 == armhf ]] && echo qemu-arm-static || echo qemu-aarch64-static; }
cpu_of() { [[ $1 == armhf ]] && echo cortex-a7 || echo cortex-a72; }

stamp_ok() { [[ $FORCE == 0 && -f $STAMPS/$1 && "$(cat "$STAMPS/$1")" == "$2" ]]; }
stamp_set() { mkdir -p "$STAMPS"; printf '%s\n' "$2" >"$STAMPS/$1"; }
write_if_changed() {  # write_if_changed FILE MODE < content
  local tmp; tmp=$(mktemp "$1.XXXXXX"); cat >"$tmp"; chmod "$2" "$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv -f "$tmp" "$1"; fi
}
elapsed() { echo "$((SECONDS - $1))s"; }
as_root() {  # apt-get/dpkg changes need root
  if [[ $EUID == 0 ]]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "needs root (or sudo) for: $*"; fi
}

mkdir -p "$ARM" "$ARM/bin" "$ARM/logs"
exec 9>"$ARM/.lock"
flock -w 1800 9 || die "another arm-sysroot.sh run holds $ARM/.lock"
T0=$SECONDS

declare -A NEED_ARCH=()
for t in "${TARGETS[@]}"; do NEED_ARCH[$(arch_of "$t")]=1; done

# --- 1. qemu-user-static ---------------------------------------------------
need_qemu=0
for a in "${!NEED_ARCH[@]}"; do command -v "$(qemu_of "$a")" >/dev/null || need_qemu=1; done
if [[ $need_qemu == 1 ]]; then
  log "installing qemu-user-static"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-cache show qemu-user-static >/dev/null 2>&1 ||
     ! as_root apt-get install -y -q -o DPkg::Lock::Timeout=300 qemu-user-static >"$ARM/logs/apt-qemu.log" 2>&1; then
    as_root apt-get update -q >>"$ARM/logs/apt-qemu.log" 2>&1 || log "warning: apt-get update reported errors"
    as_root apt-get install -y -q -o DPkg::Lock::Timeout=300 qemu-user-static >>"$ARM/logs/apt-qemu.log" 2>&1 ||
      { tail -n 20 "$ARM/logs/apt-qemu.log" >&2; die "apt-get install qemu-user-static failed"; }
  fi
  for a in "${!NEED_ARCH[@]}"; do
    command -v "$(qemu_of "$a")" >/dev/null || die "$(qemu_of "$a") still missing after installing qemu-user-static"
  done
fi

# --- 2. Debian sysroots ------------------------------------------------------
ADDED_ARCHES=()
apt_restore() {
  [[ ${#ADDED_ARCHES[@]} -gt 0 ]] || return 0
  local a
  for a in "${ADDED_ARCHES[@]}"; do
    as_root dpkg --remove-architecture "$a" || log "warning: dpkg --remove-architecture $a failed"
  done
  ADDED_ARCHES=()
  log "restoring host apt (foreign architectures removed, apt-get update)"
  as_root apt-get update -q >"$ARM/logs/apt-update-restore.log" 2>&1 ||
    log "warning: final apt-get update reported errors (see $ARM/logs/apt-update-restore.log)"
}
trap apt_restore EXIT

sysroot_key() { echo "rev=$REV arch=$1 seeds=$(xargs <<<"${SEEDS[$1]}") block=$(xargs <<<"$APT_BLOCK")"; }

todo_arches=()
for a in arm64 armhf; do
  [[ -n ${NEED_ARCH[$a]:-} ]] || continue
  stamp_ok "sysroot-$a" "$(sysroot_key "$a")" && [[ -x $ARM/sysroot-$a/usr/bin/python3.11 ]] || todo_arches+=("$a")
done

if [[ ${#todo_arches[@]} -gt 0 ]]; then
  ts=$SECONDS
  command -v "$PY" >/dev/null || die "host python '$PY' not found (set PYTHON=...)"
  have=" $(dpkg --print-architecture) $(dpkg --print-foreign-architectures | xargs) "
  for a in "${todo_arches[@]}"; do
    # Recorded before it is added, so an interrupt during dpkg still removes it on exit.
    if [[ $have != *" $a "* ]]; then ADDED_ARCHES+=("$a"); as_root dpkg --add-architecture "$a"; fi
  done
  log "apt-get update with foreign architectures: ${todo_arches[*]}"
  # One index failing (e.g. a security mirror mid-sync for armhf) is tolerated:
  # anything really missing is reported by the resolver below.
  as_root apt-get update -q >"$ARM/logs/apt-update.log" 2>&1 ||
    log "warning: apt-get update reported errors, continuing (see $ARM/logs/apt-update.log)"
  apt-cache dumpavail >"$ARM/logs/apt-avail.txt"

  for a in "${todo_arches[@]}"; do
    debs=$ARM/debs/$a; mkdir -p "$debs"
    # shellcheck disable=SC2046
    "$PY" - "$ARM/logs/apt-avail.txt" "$a" "${SEEDS[$a]}" "$APT_BLOCK" >"$debs.list" <<'EOF'
import re, sys
avail, arch, seeds, block = sys.argv[1], sys.argv[2], sys.argv[3].split(), set(sys.argv[4].split())
pk, prov = {}, {}
for st in open(avail, encoding="utf-8", errors="replace").read().split("\n\n"):
    f, key = {}, None
    for line in st.splitlines():
        if line[:1] in (" ", "\t"):
            if key:
                f[key] += " " + line.strip()
            continue
        key, _, val = line.partition(":")
        f[key] = val.strip()
    n, a = f.get("Package"), f.get("Architecture")
    if not n or a not in (arch, "all") or (n, a) in pk:
        continue
    pk[(n, a)] = f
    for p in filter(None, (x.split("(")[0].strip() for x in f.get("Provides", "").split(","))):
        prov.setdefault(p, []).append((n, a))

def cands(name):
    name = name.split(":")[0]                      # foo:any / foo:native -> target arch
    return [(name, a) for a in (arch, "all") if (name, a) in pk] or prov.get(name, [])

chosen, queue = {}, []
for s in seeds:
    c = cands(s)
    if not c:
        sys.exit("arm-sysroot: ERROR: package %s:%s is not in the apt indexes" % (s, arch))
    queue.append(c[0])
while queue:
    n, a = queue.pop(0)
    if (n, a) in chosen:
        continue
    chosen[(n, a)] = pk[(n, a)]
    deps = ", ".join(x for x in (pk[(n, a)].get("Pre-Depends"), pk[(n, a)].get("Depends")) if x)
    for grp in filter(None, (g.strip() for g in deps.split(","))):
        alts = [re.sub(r"\s*[(\[<].*$", "", x.strip()) for x in grp.split("|")]
        if any(x.split(":")[0] in block for x in alts):
            continue
        options = [c for x in alts for c in cands(x)]
        if any(c in chosen for c in options):
            continue
        if not options:
            sys.exit("arm-sysroot: ERROR: cannot satisfy '%s' (needed by %s:%s)" % (grp, n, a))
        queue.append(options[0])
for (n, a), f in sorted(chosen.items()):
    print(n, a, f["Version"])
EOF
    if [[ $a == armhf ]]; then
      npv=$(awk '$1=="python3-numpy"{print $3}' "$debs.list")
      [[ ${npv#*:} == 1.* ]] || die "Debian's python3-numpy:armhf is $npv, expected 1.x (<2) for tflite-runtime 2.14"
    fi
    missing=()
    while read -r n pa v; do
      [[ -f $debs/${n}_${v//:/%3a}_${pa}.deb ]] || missing+=("$([[ $pa == all ]] && echo "$n=$v" || echo "$n:$pa=$v")")
    done <"$debs.list"
    log "sysroot-$a: $(wc -l <"$debs.list") packages, downloading ${#missing[@]}"
    if [[ ${#missing[@]} -gt 0 ]]; then
      (cd "$debs" && apt-get download -q -o APT::Sandbox::User=root "${missing[@]}") >"$ARM/logs/apt-download-$a.log" 2>&1 ||
        { tail -n 20 "$ARM/logs/apt-download-$a.log" >&2; die "apt-get download failed for $a"; }
    fi
  done
  rm -f "$ARM/logs/apt-avail.txt"
  apt_restore   # host apt back to how it was before unpacking anything

  for a in "${todo_arches[@]}"; do
    debs=$ARM/debs/$a; sr=$ARM/sysroot-$a; tmp=$sr.tmp
    rm -rf -- "$tmp"; mkdir -p "$tmp"
    while read -r n pa v; do
      dpkg-deb -x "$debs/${n}_${v//:/%3a}_${pa}.deb" "$tmp"
    done <"$debs.list"
    # Absolute symlinks would point into the host: make them relative.
    while IFS= read -r -d '' l; do
      t=$(readlink "$l")
      ln -sfn "$(realpath -m --relative-to="$(dirname "$l")" "$tmp$t")" "$l"
    done < <(find "$tmp" -type l -lname '/*' -print0)
    # What the update-alternatives postinst of libblas3/liblapack3 would link.
    for l in "$tmp"/usr/lib/*/blas/libblas.so.3 "$tmp"/usr/lib/*/lapack/liblapack.so.3; do
      [[ -e $l ]] || continue
      d=${l%/*}
      [[ -e ${d%/*}/${l##*/} ]] || ln -s "${d##*/}/${l##*/}" "${d%/*}/${l##*/}"
    done
    # Keep the guest's ld.so and site.py away from the host's x86 files: QEMU's
    # -L prefix only redirects paths that exist in the sysroot.
    mkdir -p "$tmp/etc" "$tmp/proc" "$tmp/usr/lib/python3/dist-packages" \
      "$tmp/usr/local/lib/python3.11/dist-packages" "$tmp/usr/local/lib/python3/dist-packages"
    : >"$tmp/etc/ld.so.cache"; : >"$tmp/etc/ld.so.preload"
    cp "$debs.list" "$tmp/.edgekit-packages"
    [[ -x $tmp/usr/bin/python3.11 ]] || die "sysroot-$a: usr/bin/python3.11 missing after unpacking"
    rm -rf -- "$sr"; mv -- "$tmp" "$sr"
    stamp_set "sysroot-$a" "$(sysroot_key "$a")"
    rm -f "$STAMPS"/smoke-* "$STAMPS"/pycache-*
    log "sysroot-$a: ready ($(du -sh "$sr" | cut -f1))"
  done
  log "sysroots done in $(elapsed "$ts")"
fi

# --- 3. fake ARM /proc/cpuinfo (QEMU -L redirects the guest's open) ---------
# ai-edge-litert >= 2.2 segfaults under qemu-user when it parses the x86 host's
# /proc/cpuinfo.
for a in "${!NEED_ARCH[@]}"; do
  [[ -f $CPUINFO_DIR/$a.txt ]] || die "missing $CPUINFO_DIR/$a.txt"
  write_if_changed "$ARM/sysroot-$a/proc/cpuinfo" 644 <"$CPUINFO_DIR/$a.txt"
done

# --- 4. PyPI packages, installed with the host pip -------------------------
platform_args() {  # pip does not expand manylinux_2_X downwards: list them all
  local m=$1 n
  for n in $(seq 36 -1 17); do printf -- '--platform manylinux_2_%s_%s ' "$n" "$m"; done
  printf -- '--platform manylinux2014_%s --platform linux_%s' "$m" "$m"
}
pip_target() {  # pip_target DIR MACHINE [--no-deps] REQ...
  local dir=$1 m=$2; shift 2
  # shellcheck disable=SC2046
  "$PY" -m pip install --disable-pip-version-check --no-input --no-compile --no-warn-script-location \
    --target "$dir" $(platform_args "$m") --only-binary=:all: \
    --python-version 3.11 --implementation cp --abi cp311 "$@"
}

for t in "${TARGETS[@]}"; do
  a=$(arch_of "$t"); m=$(machine_of "$a"); site=$ARM/site-$t
  reqs=${PIP[$t]}; nodeps=${PIP_NODEPS[$t]:-}
  key="rev=$REV machine=$m reqs=$reqs nodeps=$nodeps"
  stamp_ok "site-$t" "$key" && [[ -d $site ]] && continue
  ts=$SECONDS
  log "site-$t: pip install $nodeps${nodeps:+ (no deps) + }$reqs [$m]"
  "$PY" -m pip --version >/dev/null 2>&1 || die "'$PY -m pip' does not work (set PYTHON=...)"
  tmp=$site.tmp; rm -rf -- "$tmp"; plog=$ARM/logs/pip-$t.log; : >"$plog"
  if [[ -n $nodeps ]]; then
    # shellcheck disable=SC2086
    pip_target "$tmp" "$m" --no-deps $nodeps >>"$plog" 2>&1 ||
      { grep -v '^WARNING' "$plog" | tail -n 20 >&2; die "pip failed for $t (log: $plog)"; }
  fi
  # shellcheck disable=SC2086
  pip_target "$tmp" "$m" $reqs >>"$plog" 2>&1 ||
    { grep -v '^WARNING' "$plog" | tail -n 20 >&2; die "pip failed for $t (log: $plog)"; }
  if [[ $t == armv7-* ]] && compgen -G "$tmp/numpy*" >/dev/null; then
    die "site-$t: pip pulled numpy in; armv7 must use Debian's python3-numpy"
  fi
  rm -rf -- "$site"; mv -- "$tmp" "$site"
  stamp_set "site-$t" "$key"
  rm -f "$STAMPS/smoke-$t" "$STAMPS/pycache-$t"
  got=$(for d in "$site"/*.dist-info; do d=${d##*/}; echo "${d%.dist-info}"; done |
        grep -Ei '^(ai_edge_litert|tflite_runtime|numpy|pillow|click|rich)-' | xargs)
  log "site-$t: $got ($(elapsed "$ts"))"
done

# --- 5. launchers ---------------------------------------------------------
for t in "${TARGETS[@]}"; do
  a=$(arch_of "$t")
  extra=""; [[ $a == armhf ]] && extra=":\$sysroot/usr/lib/python3/dist-packages"
  write_if_changed "$ARM/bin/python-$t" 755 <<EOF
#!/usr/bin/env bash
# Generated by scripts/arm-sysroot.sh -- do not edit.
# Drop-in python3 for $t: Debian 12 $a python3.11 under $(qemu_of "$a").
# QEMU_CPU picks the emulated CPU (default $(cpu_of "$a")); EDGEKIT_ARM_PYTHONPATH
# is appended to PYTHONPATH (the host's PYTHONPATH is not inherited: x86 code).
# Do not use QEMU_CPU=max: ai-edge-litert's int8 results come out ~100 LSB off.
set -e
here=\$(cd -- "\$(dirname -- "\$(readlink -f -- "\${BASH_SOURCE[0]}")")" && pwd)
arm=\${here%/bin}
root=\${arm%/*}
sysroot=\$arm/sysroot-$a
cpu=\${QEMU_CPU:-$(cpu_of "$a")}
unset PYTHONHOME PYTHONSTARTUP PYTHONEXECUTABLE PYTHONUSERBASE
export QEMU_LD_PREFIX=\$sysroot QEMU_CPU=\$cpu
export EDGEKIT_EMULATED=1 EDGEKIT_EMULATED_CPU=\$cpu EDGEKIT_EMULATED_ARCH=$(machine_of "$a")
export PYTHONPATH=\$root:\$arm/site-$t$extra\${EDGEKIT_ARM_PYTHONPATH:+:\$EDGEKIT_ARM_PYTHONPATH}
export PYTHONNOUSERSITE=1 PYTHONPYCACHEPREFIX=\$arm/pycache
# PYTHONHOME + argv[0] = this launcher: sys.executable re-enters the emulator.
export PYTHONHOME=\$sysroot/usr
exec $(qemu_of "$a") -L "\$sysroot" -cpu "\$cpu" -0 "\$here/python-$t" "\$sysroot/usr/bin/python3.11" "\$@"
EOF
done

# --- 6. bytecode cache + smoke test (imports + int8 inference self-test) ---------------------------------------
# .pyc are arch-independent: the host's CPython 3.11 precompiles the stdlib and
# site dirs into .arm/pycache (the launchers' PYTHONPYCACHEPREFIX), which
# saves a lot of emulated compile time on the first runs.
mkdir -p "$ARM/selftest"
# Tiny int8 Conv+Dense model (TF 2.21 converter, 3200 bytes) and its outputs on
# x86 ai-edge-litert: the emulated runtimes must match within 1 LSB. This
# catches both a missing fake cpuinfo (segfault) and QEMU's `max` CPU (int8
# results 100+ LSB off).
base64 -d <<'EOF' | gzip -dc | write_if_changed "$ARM/selftest/int8.tflite" 644
H4sIAAAAAAACA51We2xTVRg/fYyuWxlLKFsdC3YI5eFoKRBKuMOt4eXMOpp2gYrLyg29jIaure3t
FAywipFFgSECOoSgyZyRTCBkqDHF8RwmGhCEDGHgIGRMQOQPIEzKrt+59/T2tjzDTX45597znd/3
ON/33aNHCFXNqZgMA9IiPSpEOhhzkQbeM5ES5gi+IbQOcBXwrgKhRsDRbIRgQDKAEnDrAcdpiGwJ
YAggzITqvf5at4dZQkd8rCi7kRNklbwOhAIRNhhh3RORhO8e8OERyy1jQnTYzTL+cCCEZeSAKUSu
G7iGkPlQwMx5lfNnO5zl8yrdttlV1lnWKivo0PC+YF05Etk6r98divhZbx3jrmdCYW/AD56DfaCg
EcACFgEqACVgWCHgKKzHAO2ANkALYDtgM4Al3Pvigu2LiP2ZoDWhH/OPxU6gQfy3QWQP9vuGAssn
4q/k95Z/tKr1w7WfcTLit5LfidAk4ySzESI24qGgC/OajeYpRj6KwnPmHsedA3QDegBXAX0AB9nz
OqAjai/69Ytp36quv3H3HUtnTt84d/PxP+U9P33XNOzileBxvSa6KqwxZC4vYjY1Vl/ov3plXXRM
b1d0x6ZD/iOlp6bNL3W+1lkZL2iV2JH+HCZr2Mn8092Krhld71cH55rHTXZVhlp32+OU+7xxV8up
6OXf7zRfRCvzTLptVX3Fnad3dgy93RqjXnVfW1A9crtlf31F/zVF11zHjk9+2x/VrBiYN0CN8nRs
MXq3Hu+Kney3jh44aepvmmtdecRfu7q2YEubtenrnDXleTULlzo1Px4OWdErjtiNP06PXp+/ovfC
6jXjhp05sPB855cj7xwr3bNhxt7pV1q8+6eaak4ca5RvLVuQu/JlVcyx0z5r/O7GjhklZ4u5PT25
AZdRe7bO7umpKUVNB9e7AjcLpv77zb7mvT9kffxPi+3C2U+ptw7VRstWX197/mZ++6GNWzacKJ/z
vT9kd94+95XrxIAQC4wywCXJOz7jW5J3/Hx+n+O23xdy3FZR7tDPDPghV1nGY+TltbxUjpg1OKdy
yHdci2dA6BygWyZw1tFePyI55INvesBBmDcAXI/hy5bw4VTOJfMMXIP9HJ+XOE9xL8gmdkNJcghl
ifZkEZlciZ/ZJJ9VCPHr9bCnUNBB4VFPOKV1Iid7s8hcTWT2wd5Rwl79KFJfcuJHppiFgh8yArWk
/yRqK7GnIM13YpclYZdMtEvF24W3yiRcKsKj5X1+hEeG7SvmY6KFPqTheTRkTSbyC3OVGAfhzDLI
uiYphwbjPIEFPeAXcIoFdMMmF6CdOLYXhKtxDsiEs+b71H/4nJBMR/wqIVw4PHYSD3yWWHYzyCb6
l0xiE55f3jCaGg6jk6VZZknEZ6dDrJeFbsp4ZtI+n9s8faJ4dphr/INUvWXEH6zXJdHLf38g6NWS
/Q2c8CR0039NpUbw/5q3Iwy0chrUmZb4aBZ+FzBzMOGldJBJ5g7mHBEX9GsJbzY5Q/xPyYwLufR0
PhNhTeZOKI0zS8JZ/XTOMBvyehiPO+zzLmbEnpnGpyZ8OG/a4kKtPIHPKbUNx3tbPBnvsaTvk7pQ
N0hqNtF3MD6IPzvuJek2LIbeNMnDh8kXoR6/hCcBXwSnB5L0A6nunx8mfXeJ9YTU+P9a+FCwq1jS
I5/1YLkDpiKqebCB2n3XQK1YYKCKnmh7qoEJmxQE+KxrBlLtS/QA/L+PvaB9vbEiS8ZOg6V37RjL
mL8NFtwv6JCXXWoEe8Is7WeTcbqUpj+DxCeIa3jgxfQXvqmjdh3Ip5ZHh1Lt7+moR/LLA9cvBkYb
zdoiPjOS3EdwTYW41HxVSvMf1gzPWVMmM8n/ND7Sb+TYrjZy50uNjxkle2cef4/NJ38g4VHBV6Fl
4TrQif0eyUt4e5VCb3rOOoU3evEylKIT356Hi7dnxPd1qU4ci6pk31b7JLU3iOSRnO+Fif1Kcn98
ch2+FGwg/S/lru2W3pmh/Yp1JtWDxyCxaRrpDTpiUzvoUCfPUY3v2cSXvD6YO4W58w7MJwjzCRr+
XydkFLbbJny3aSAiQyT+KJLnqfgf9WjFu4AMAAA=
EOF
write_if_changed "$ARM/selftest/smoke.py" 644 <<'EOF'
import os, sys, platform, ssl, sqlite3, ctypes, lzma, bz2, zlib, json, hashlib, decimal
import importlib, importlib.metadata
import numpy, PIL, PIL.Image, click, rich
rt, machine, sysroot, root, launcher = sys.argv[1:6]
Interpreter = importlib.import_module(rt + ".interpreter").Interpreter
assert platform.machine() == machine, platform.machine()
assert sys.prefix.startswith(sysroot), sys.prefix
assert all(p.startswith(root) for p in sys.path if p), sys.path
assert os.path.basename(sys.executable) == launcher, sys.executable
it = Interpreter(model_path=os.path.join(os.path.dirname(__file__), "int8.tflite"), num_threads=1)
it.allocate_tensors()
i, o = it.get_input_details()[0], it.get_output_details()[0]
expected = [[-76, -9, -6, -110], [63, 11, -64, 58], [51, -17, -42, -128]]
for k, want in enumerate(expected):
    x = ((numpy.arange(72) * (37 + 2 * k) + 11 * k) % 255 - 127).astype(numpy.int8).reshape(i["shape"])
    it.set_tensor(i["index"], x)
    it.invoke()
    got = it.get_tensor(o["index"]).ravel().astype(int)
    assert numpy.abs(got - want).max() <= 1, "int8 self-test: got %s, want %s (+-1)" % (got.tolist(), want)
print(machine, "python", platform.python_version(), "numpy", numpy.__version__, "Pillow", PIL.__version__,
      rt, importlib.metadata.version(rt.replace("_", "-")), "int8 self-test ok")
EOF
host_is_311=$("$PY" -c 'import sys; print(int(sys.version_info[:2] == (3, 11)))' 2>/dev/null || echo 0)
for t in "${TARGETS[@]}"; do
  a=$(arch_of "$t"); sr=$ARM/sysroot-$a
  key="rev=$REV $(cat "$STAMPS/sysroot-$a" "$STAMPS/site-$t" | md5sum | cut -c1-16)"
  if [[ $host_is_311 == 1 ]] && ! stamp_ok "pycache-$t" "$key"; then
    ts=$SECONDS
    dirs=("$sr/usr/lib/python3.11" "$ARM/site-$t")
    [[ $a == armhf ]] && dirs+=("$sr/usr/lib/python3/dist-packages")
    PYTHONPYCACHEPREFIX=$ARM/pycache "$PY" -m compileall -qq -j0 -x '/(test|tests|idle_test|lib2to3/tests)/' "${dirs[@]}" || true
    stamp_set "pycache-$t" "$key"
    log "pycache-$t: precompiled ($(elapsed "$ts"))"
  fi
  key="$key $(cat "$ARM/selftest/smoke.py" "$ARM/selftest/int8.tflite" "$ARM/bin/python-$t" | md5sum | cut -c1-16)"
  [[ $CHECK == 1 ]] || ! stamp_ok "smoke-$t" "$key" || continue
  ts=$SECONDS
  rt=ai_edge_litert; [[ $t == *tflite-runtime ]] && rt=tflite_runtime
  out=$(cd "$ARM" && env -u QEMU_CPU "$ARM/bin/python-$t" "$ARM/selftest/smoke.py" \
          "$rt" "$(machine_of "$a")" "$sr" "$ROOT" "python-$t" 2>&1) ||
    { printf '%s\n' "$out" >&2; die "smoke test of .arm/bin/python-$t failed"; }
  stamp_set "smoke-$t" "$key"
  log "python-$t: ok: ${out##*$'\n'} ($(elapsed "$ts"))"
done

log "done in $(elapsed "$T0"): launchers: $(printf '.arm/bin/python-%s ' "${TARGETS[@]}")"
