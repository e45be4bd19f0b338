"""Target profiles: the shipped ones, user folders, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.errors import InputError
from edgekit.targets import QUANT_MODES, RUNTIMES, get_target, list_targets

REQUIRED = {"rpi4", "rpi5", "rpi-armv7", "jetson-nano", "jetson-orin", "x86_64"}


def test_shipped_profiles_cover_the_devices():
    targets = {t.name: t for t in list_targets()}
    assert REQUIRED <= set(targets)
    assert targets["rpi4"].arch == "aarch64" and targets["rpi4"].cpu == "cortex-a72"
    assert targets["rpi5"].cpu == "cortex-a76"
    assert targets["rpi-armv7"].arch == "armv7l"
    for target in targets.values():
        assert target.quantization in target.modes and set(target.modes) <= set(QUANT_MODES)
        assert target.runtime in RUNTIMES and target.runtime_requirement
        assert 1 <= target.threads <= target.cores
        assert target.budget_ms > 0


def test_tflite_runtime_targets_refuse_dynamic_range():
    # tflite-runtime 2.14 cannot load TF 2.21's dynamic-range models (FULLY_CONNECTED version 12).
    for target in list_targets():
        if target.runtime == "tflite-runtime":
            assert "dynamic" not in target.modes


def test_unknown_target_lists_the_known_ones():
    with pytest.raises(InputError) as error:
        get_target("rpi9")
    assert "rpi9" in str(error.value) and "rpi4" in str(error.value) and "x86_64" in str(error.value)


def test_user_folder_adds_and_overrides(tmp_path):
    (tmp_path / "coral.toml").write_text(
        'name = "coral"\ndescription = "Coral Dev Board CPU"\narch = "aarch64"\ncpu = "cortex-a53"\n'
        'cores = 4\nthreads = 4\nquantization = "int8"\nbudget_ms = 25.0\nruntime = "ai-edge-litert"\n'
        'runtime_requirement = "ai-edge-litert>=2.3"\n'
    )
    (tmp_path / "rpi4.toml").write_text(
        'name = "rpi4"\ndescription = "my overclocked Pi"\narch = "aarch64"\ncpu = "cortex-a72"\n'
        'cores = 4\nthreads = 3\nquantization = "float32"\nbudget_ms = 5\nruntime = "ai-edge-litert"\n'
        'runtime_requirement = "ai-edge-litert>=2.3"\n'
    )
    names = [t.name for t in list_targets(tmp_path)]
    assert "coral" in names and "x86_64" in names
    assert get_target("coral", tmp_path).budget_ms == 25.0
    assert get_target("rpi4", tmp_path).threads == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "bad"\n', "missing field"),
        ("not toml [", "not valid TOML"),
        (
            'name = "bad"\ndescription = "x"\narch = "a"\ncpu = "c"\ncores = "four"\nthreads = 1\n'
            'quantization = "int8"\nbudget_ms = 10\nruntime = "ai-edge-litert"\nruntime_requirement = "x"\n',
            "'cores' has the wrong type",
        ),
        (
            'name = "bad"\ndescription = "x"\narch = "a"\ncpu = "c"\ncores = 4\nthreads = 1\n'
            'quantization = "int4"\nbudget_ms = 10\nruntime = "ai-edge-litert"\nruntime_requirement = "x"\n',
            "unknown quantization mode",
        ),
    ],
)
def test_bad_profiles_name_file_and_problem(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(InputError) as error:
        list_targets(tmp_path)
    assert message in str(error.value) and str(path) in str(error.value)


def test_profile_name_must_match_file(tmp_path):
    source = list_targets()[0].source
    (tmp_path / "other.toml").write_text(Path(source).read_text())
    with pytest.raises(InputError, match="must match the file name"):
        list_targets(tmp_path)
