"""Signed bundles: keygen, sign, verify and `run --trusted-key`, through the real CLI where a user would."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys

import pytest

from edgekit.bundle import MANIFEST_NAME, SIGNATURE_NAME, open_bundle
from edgekit.errors import InputError, IntegrityError
from edgekit.signing import generate_keypair, load_private_key, sign_bundle, verify_bundle
from tests.conftest import ROOT, cli_json, edgekit_cli

RUNTIME_NOTE = "INFO: Created TensorFlow Lite XNNPACK delegate"
# These tests are about signatures, not speed: a budget no machine misses keeps exit 3 out of them.
NO_BUDGET = ("--budget-ms", "100000")


def assert_refused(result, code: int, *fragments: str) -> None:
    """Exit code, one line of our own on stderr (the runtime may add its INFO line), no traceback."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith(RUNTIME_NOTE)]
    assert len(lines) == 1 and lines[0].startswith("edgekit: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("keys")
    code, laptop = cli_json("keygen", folder / "laptop")
    assert code == 0
    other = generate_keypair(folder / "other")
    return {"dir": folder, "laptop": laptop, "other": other.to_dict()}


@pytest.fixture()
def bundle(digits_bundles, tmp_path):
    folder = tmp_path / "digits-x86_64"
    shutil.copytree(digits_bundles["bundles"]["int8"], folder)
    return folder


def test_keygen_writes_a_private_key_only_its_owner_reads(keys):
    private = keys["dir"] / "laptop.key"
    public = keys["dir"] / "laptop.pub"
    assert keys["laptop"]["private_key"] == str(private) and keys["laptop"]["public_key"] == str(public)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    assert private.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert len(keys["laptop"]["key_id"]) == 16 and keys["laptop"]["key_id"] != keys["other"]["key_id"]
    assert not [p for p in keys["dir"].iterdir() if p.name.endswith(".partial")]
    assert_refused(edgekit_cli("keygen", keys["dir"] / "laptop"), 1, "laptop.key", "already exists")
    assert_refused(edgekit_cli("keygen", keys["dir"] / "no-such-folder" / "k"), 1, "no-such-folder")


def test_signed_bundle_verifies_and_runs(keys, bundle):
    code, signed = cli_json("sign", bundle, "--key", keys["dir"] / "laptop.key")
    assert code == 0 and signed["key_id"] == keys["laptop"]["key_id"]
    assert (bundle / SIGNATURE_NAME).is_file()

    code, report = cli_json("verify", bundle, "--trusted-key", keys["dir"] / "laptop.pub")
    assert code == 0
    assert report["signed"] and report["signature_verified"] and report["key_id"] == keys["laptop"]["key_id"]
    assert {f["name"] for f in report["files"]} == {"model.tflite", "labels.txt"}

    code, unchecked = cli_json("verify", bundle)
    assert code == 0 and unchecked["signed"] and not unchecked["signature_verified"]

    code, run = cli_json("run", bundle, "--trusted-key", keys["dir"] / "laptop.pub", "--repeat", "3", *NO_BUDGET)
    assert code == 0 and run["latency_ms"]["p99"] > 0
    # The signature is the one file a bundle may hold that its manifest does not list.
    code, _ = cli_json("inspect", bundle)
    assert code == 0


def test_unsigned_and_wrongly_signed_bundles_are_refused(keys, bundle):
    trusted = keys["dir"] / "laptop.pub"
    for command in ("verify", "run"):
        assert_refused(edgekit_cli(command, bundle, "--trusted-key", trusted), 4, str(bundle), "not signed")
    sign_bundle(bundle, keys["dir"] / "other.key")
    for command in ("verify", "run"):
        assert_refused(
            edgekit_cli(command, bundle, "--trusted-key", trusted),
            4,
            SIGNATURE_NAME,
            f"signed by key {keys['other']['key_id']}",
            f"not by the trusted key {keys['laptop']['key_id']}",
        )


def test_signature_covers_the_manifest_bytes_and_so_every_file(keys, bundle):
    trusted = keys["dir"] / "laptop.pub"
    sign_bundle(bundle, keys["dir"] / "laptop.key")
    manifest_path = bundle / MANIFEST_NAME
    original = manifest_path.read_bytes()

    # A manifest edit that every file check accepts (a looser budget) still breaks the signature.
    data = json.loads(original)
    data["target"]["budget_ms"] = 1000.0
    manifest_path.write_text(json.dumps(data, indent=2) + "\n")
    verify_bundle(bundle)  # files still match the edited manifest...
    with pytest.raises(IntegrityError, match="does not match"):
        verify_bundle(bundle, trusted_key=trusted)  # ...but the signer never wrote it
    assert_refused(edgekit_cli("run", bundle, "--trusted-key", trusted), 4, MANIFEST_NAME, "does not match")

    # Bytes, not meaning: the same JSON re-indented is not what was signed.
    manifest_path.write_text(json.dumps(json.loads(original)) + "\n")
    with pytest.raises(IntegrityError, match="does not match"):
        verify_bundle(bundle, trusted_key=trusted)

    # A changed model with a manifest updated to match: the files agree, the signature does not.
    manifest_path.write_bytes(original)
    model = bundle / "model.tflite"
    content = bytearray(model.read_bytes())
    content[-1] ^= 1
    model.write_bytes(bytes(content))
    with pytest.raises(IntegrityError, match="model.tflite: does not match the manifest"):
        verify_bundle(bundle, trusted_key=trusted)
    import hashlib

    data = json.loads(original)
    data["files"]["model.tflite"]["sha256"] = hashlib.sha256(bytes(content)).hexdigest()
    manifest_path.write_text(json.dumps(data, indent=2) + "\n")
    verify_bundle(bundle)
    with pytest.raises(IntegrityError, match="does not match"):
        verify_bundle(bundle, trusted_key=trusted)


def test_damaged_signature_files_are_refused(keys, bundle):
    trusted = keys["dir"] / "laptop.pub"
    sign_bundle(bundle, keys["dir"] / "laptop.key")
    sig = bundle / SIGNATURE_NAME
    good = json.loads(sig.read_text())
    cases = {
        "not json": ("{oops", "not a valid signature file"),
        "no signature field": (json.dumps({**good, "signature": None}), "field 'signature'"),
        "not base64": (json.dumps({**good, "signature": "!!!"}), "not base64"),
        "short": (json.dumps({**good, "signature": "AAAA"}), "64 bytes"),
        "other algorithm": (json.dumps({**good, "algorithm": "rsa"}), "is not ed25519"),
        "forged": (json.dumps({**good, "signature": "A" * 86 + "=="}), "does not match"),
    }
    for text, message in cases.values():
        sig.write_text(text)
        with pytest.raises(IntegrityError, match=message):
            verify_bundle(bundle, trusted_key=trusted)
    sig.write_text(cases["forged"][0])
    assert_refused(edgekit_cli("verify", bundle, "--trusted-key", trusted), 4, MANIFEST_NAME, "does not match")


def test_archives_are_signed_in_place(keys, bundle, tmp_path):
    from edgekit.bundle import pack_archive

    archive = pack_archive(bundle, tmp_path / "digits-x86_64.tar.gz")
    trusted = keys["dir"] / "laptop.pub"
    assert_refused(edgekit_cli("verify", archive, "--trusted-key", trusted), 4, str(archive), "not signed")
    code, _ = cli_json("sign", archive, "--key", keys["dir"] / "laptop.key")
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits-x86_64", "digits-x86_64.tar.gz"]
    code, report = cli_json("verify", archive, "--trusted-key", trusted)
    assert code == 0 and report["signature_verified"]
    with open_bundle(archive, trusted_key=trusted) as opened:
        assert (opened.path / SIGNATURE_NAME).is_file()
    code, run = cli_json("run", archive, "--trusted-key", trusted, "--repeat", "2", *NO_BUDGET)
    assert code == 0 and run["name"] == "digits-int8"


def test_a_changed_bundle_is_not_signed(keys, bundle):
    (bundle / "labels.txt").write_text("changed\n")
    assert_refused(
        edgekit_cli("sign", bundle, "--key", keys["dir"] / "laptop.key"), 4, "labels.txt", "does not match the manifest"
    )
    assert not (bundle / SIGNATURE_NAME).exists()


def test_bad_key_files_are_named(keys, bundle, tmp_path):
    junk = tmp_path / "junk.key"
    junk.write_text("not a key\n")
    assert_refused(edgekit_cli("sign", bundle, "--key", junk), 1, str(junk), "not a usable private key")
    assert_refused(edgekit_cli("sign", bundle, "--key", tmp_path / "none.key"), 1, "none.key", "no such private key")
    assert_refused(edgekit_cli("sign", bundle, "--key", keys["dir"] / "laptop.pub"), 1, "laptop.pub", "is a public key")
    assert_refused(
        edgekit_cli("verify", bundle, "--trusted-key", keys["dir"] / "laptop.key"), 1, "laptop.key", "private key"
    )
    assert_refused(edgekit_cli("run", bundle, "--trusted-key", tmp_path / "none.pub"), 1, "none.pub")
    with pytest.raises(InputError, match="not an Ed25519"):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        other = ec.generate_private_key(ec.SECP256R1())
        pem = other.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        (tmp_path / "ec.key").write_bytes(pem)
        load_private_key(tmp_path / "ec.key")


def _imports_after(args: list[str], hidden: str | None = None) -> dict:
    """Run the CLI in a fresh interpreter and report its exit code and whether it imported cryptography."""
    script = f"""
import json, sys
{"sys.modules[" + repr(hidden) + "] = None" if hidden else ""}
sys.argv = ["edgekit", *{args!r}]
from edgekit.cli import main
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code
imported = sys.modules.get("cryptography") is not None
print(json.dumps({{"code": code, "cryptography": imported}}), file=sys.stderr)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    status = json.loads(result.stderr.strip().splitlines()[-1])
    status["stderr"] = result.stderr
    return status


def test_run_and_verify_without_a_key_never_import_cryptography(keys, bundle):
    sign_bundle(bundle, keys["dir"] / "laptop.key")
    status = _imports_after(["run", str(bundle), "--repeat", "2", *NO_BUDGET, "--json"])
    assert status["code"] in (0, None) and not status["cryptography"], status
    status = _imports_after(["verify", str(bundle)])
    assert status["code"] in (0, None) and not status["cryptography"], status
    status = _imports_after(["verify", str(bundle), "--trusted-key", str(keys["dir"] / "laptop.pub")])
    assert status["code"] in (0, None) and status["cryptography"], status


def test_without_cryptography_a_key_gets_a_clear_message(keys, bundle):
    status = _imports_after(["run", str(bundle), "--trusted-key", str(keys["dir"] / "laptop.pub")], "cryptography")
    assert status["code"] == 1
    assert "pip install cryptography (the sign extra)" in status["stderr"] and "Traceback" not in status["stderr"]
