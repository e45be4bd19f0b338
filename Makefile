# edgekit: every install step lives here. `make demo` and `make test` set everything up themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EDGEKIT := $(VENV)/bin/edgekit
STAMP := $(VENV)/.installed
DIGITS := samples/digits/build
BUNDLES := bundles

.PHONY: install demo demo-detect test test-unit test-arm arm-env lint sample shapes mobilenet bench clean install-ssh test-remote device-wheels

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); apt-get update -q && \
		apt-get install -y -q python3-venv && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip uninstall --quiet --yes edgekit 2>/dev/null || true  # the distribution's name before 0.2
	$(PY) -m pip install --quiet -e ".[convert,runtime,dev,fleet,onnx]"
	$(PY) -m pip install --quiet --no-deps $(ONNX_NO_DEPS)
	touch $(STAMP)

# The onnx extra's converters, without their dependencies (their pins would replace TensorFlow 2.21 and
# numpy 2): onnx2tf makes a float SavedModel from a .onnx, onnxsim fixes its shapes, tf-keras runs onnx2tf.
ONNX_NO_DEPS := onnx2tf==1.29.24 tf-keras==2.21.0 onnxsim==0.4.36

# The digits sample: trained locally in ~20 s from scikit-learn's bundled digits (no download).
sample: $(DIGITS)/digits.keras

$(DIGITS)/digits.keras: samples/digits/train.py $(STAMP)
	$(PY) samples/digits/train.py --out $(DIGITS)

demo: install sample
	$(EDGEKIT) convert $(DIGITS)/digits.keras --calibration $(DIGITS)/calibration.npz \
		--eval-data $(DIGITS)/eval.npz --labels samples/digits/labels.txt --out $(BUNDLES) --archive --force
	$(EDGEKIT) run $(BUNDLES)/digits-x86_64 samples/digits/images --top-k 3

# The shapes sample: a YOLO-style detector trained locally in ~30 s on generated scenes (no download);
# demo-detect converts it to int8 and runs it on the shipped images, printing boxes and drawing them.
SHAPES := samples/shapes/build

shapes: $(SHAPES)/shapes.keras

$(SHAPES)/shapes.keras: samples/shapes/train.py samples/shapes/scenes.py $(STAMP)
	$(PY) samples/shapes/train.py --out $(SHAPES)

demo-detect: install shapes
	$(EDGEKIT) convert $(SHAPES)/shapes.keras -t x86_64 -q int8 --task detect \
		--calibration $(SHAPES)/calibration.npz --labels samples/shapes/labels.txt \
		--name shapes --out $(BUNDLES) --force
	$(EDGEKIT) run $(BUNDLES)/shapes-x86_64 samples/shapes/images --save-outputs $(BUNDLES)/shapes-detect

# One pytest run for everything, so the session fixtures (trained sample, bundles) are built once.
test: install arm-env install-ssh device-wheels
	$(PY) -m pytest -q tests

test-unit: install
	$(PY) -m pytest -q tests -m "not arm"

# Emulated ARM Pythons under .arm/ (QEMU user mode, Debian's arm64/armhf Python 3.11, the ARM wheels),
# plus an x86 tflite-runtime reference. Cached: a second run takes seconds.
# The venv's Python runs pip for the ARM wheels (it has pip whatever the host's python3 lacks), and the
# emulated ai-edge-litert is pinned to the venv's, so ARM and x86 answers come from the same release.
arm-env: $(STAMP)
	PYTHON=$(abspath $(PY)) LITERT_VERSION=$$($(PY) -c 'from importlib.metadata import version; print(version("ai-edge-litert"))') \
		bash scripts/arm-sysroot.sh
	PYTHON=$(PYTHON) bash scripts/x86-tflite-runtime.sh

test-arm: install arm-env
	$(PY) -m pytest -q tests/arm

# OpenSSH (Debian's packages) for the remote tests: throwaway sshd servers on 127.0.0.x whose python3 is an
# emulated ARM Python (tests/remote/). The system's own sshd is not started.
install-ssh:
	bash scripts/device-openssh.sh

# aarch64 wheels (ai-edge-litert as in the venv, numpy, Pillow, pip) for `edgekit device setup --wheels` on
# the emulated Debian 12 device: downloaded once into .arm/wheels-arm64.
device-wheels: $(STAMP)
	PYTHON=$(abspath $(PY)) LITERT_VERSION=$$($(PY) -c 'from importlib.metadata import version; print(version("ai-edge-litert"))') \
		bash scripts/device-wheels.sh

test-remote: install arm-env install-ssh device-wheels
	$(PY) -m pytest -q tests/remote

# Benchmarks (benchmarks/RESULTS.md): the workloads are built into git-ignored folders, then each
# script (under ~2 minutes on 2 cores) writes build/bench/results/NAME.json; report.py gathers them
# into build/bench/results/RESULTS.md.
BENCH := build/bench
MOBILENET := samples/mobilenet/build
BENCH_BUNDLES := $(foreach model,digits mobilenet_v2,$(foreach mode,int8 float32,$(BENCH)/bundles/$(model)-$(mode)-x86_64/edgekit.json))
BENCH_SCRIPTS := run_vs_bare bench_vs_litert int8_speedup cold_start convert_overhead convert_process preprocess_cost decode_cost

mobilenet: $(MOBILENET)/mobilenet_v2.keras

$(MOBILENET)/mobilenet_v2.keras: samples/mobilenet/build.py $(STAMP)
	$(PY) samples/mobilenet/build.py --out $(MOBILENET)

EDGEKIT_SOURCES := $(shell find edgekit -name '*.py')

$(BENCH)/bundles/digits-%-x86_64/edgekit.json: $(DIGITS)/digits.keras $(EDGEKIT_SOURCES)
	$(EDGEKIT) convert $(DIGITS)/digits.keras -t x86_64 -q $* --calibration $(DIGITS)/calibration.npz \
		--labels samples/digits/labels.txt --name digits-$* --out $(BENCH)/bundles --force

$(BENCH)/bundles/mobilenet_v2-%-x86_64/edgekit.json: $(MOBILENET)/mobilenet_v2.keras $(EDGEKIT_SOURCES)
	$(EDGEKIT) convert $(MOBILENET)/mobilenet_v2.keras -t x86_64 -q $* --mean 127.5 --std 127.5 \
		--calibration $(MOBILENET)/calibration.npz --name mobilenet_v2-$* --out $(BENCH)/bundles --force

bench: install sample mobilenet $(BENCH_BUNDLES)
	set -e; for script in $(BENCH_SCRIPTS); do $(PY) benchmarks/$$script.py; done
	$(PY) benchmarks/report.py

lint: install
	$(VENV)/bin/ruff check edgekit tests samples benchmarks
	$(VENV)/bin/ruff format --check edgekit tests samples benchmarks

clean:
	rm -rf $(BUNDLES) $(DIGITS) $(SHAPES) samples/mobilenet/build samples/outlier/build build/bench .pytest_cache
