"""Ed25519 signatures for bundles: who built this bundle, and has anything changed since?

`edgekit keygen NAME` writes NAME.key (private, mode 0600, stays on the build machine) and NAME.pub
(copied to devices). `edgekit sign` writes `edgekit.sig` into the bundle: a signature over the exact
bytes of `edgekit.json`, which lists the SHA-256 of every other file, so one signature covers the
whole bundle. Devices check it with `--trusted-key NAME.pub` before loading anything.

The `cryptography` package (the `sign` extra) is imported only by the functions that touch keys, so
a device that never passes a key never needs it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.bundle import (
    MANIFEST_NAME,
    MODEL_NAME,
    SIGNATURE_NAME,
    Bundle,
    open_bundle,
    pack_archive,
    read_manifest_bytes,
)
from edgekit.bundle.model_file import check_tflite_header
from edgekit.errors import InputError, IntegrityError

ALGORITHM = "ed25519"
PRIVATE_SUFFIX = ".key"
PUBLIC_SUFFIX = ".pub"
MAX_KEY_FILE_BYTES = 16 << 10
MAX_SIGNATURE_FILE_BYTES = 4 << 10


def _crypto():
    """The Ed25519 and serialization modules of `cryptography`, with a clear error when missing."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise InputError("signatures need the 'cryptography' package: pip install 'edgekit[sign]'") from None
    return ed25519, serialization


def key_id(public_raw: bytes) -> str:
    """A short fingerprint of a public key, to tell keys apart in messages."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


def _public_raw(public_key: Any) -> bytes:
    _, serialization = _crypto()
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


# --- keys ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    """The result of `edgekit keygen`: where the two key files went and the key's fingerprint."""

    private_key: str
    public_key: str
    key_id: str
    algorithm: str = ALGORITHM

    def to_dict(self) -> dict[str, Any]:
        return {
            "private_key": self.private_key,
            "public_key": self.public_key,
            "key_id": self.key_id,
            "algorithm": self.algorithm,
        }


def _write_atomically(path: Path, content: bytes, mode: int) -> None:
    """Write a file with exactly `mode` from its first byte (a private key is never readable by
    others, not even for a moment), via a temporary name so a failure leaves nothing half-written."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:  # mkstemp made it 0600 already
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def generate_keypair(name: str | os.PathLike[str], force: bool = False) -> KeyPair:
    """Write NAME.key (PKCS#8 PEM, mode 0600) and NAME.pub (PEM, mode 0644)."""
    ed25519, serialization = _crypto()
    base = Path(name)
    if base.suffix in (PRIVATE_SUFFIX, PUBLIC_SUFFIX):
        base = base.with_suffix("")
    if not base.name or base.name.startswith("."):
        raise InputError(f"{name!s}: key name must be a plain file name")
    private_path = base.with_name(base.name + PRIVATE_SUFFIX)
    public_path = base.with_name(base.name + PUBLIC_SUFFIX)
    if not base.parent.is_dir():
        raise InputError(f"{base.parent}: no such folder for the key files")
    for path in (private_path, public_path):
        if path.exists() and not force:
            raise InputError(f"{path}: already exists (use --force to overwrite)")
    private_key = ed25519.Ed25519PrivateKey.generate()
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_atomically(private_path, private_pem, 0o600)
    _write_atomically(public_path, public_pem, 0o644)
    return KeyPair(str(private_path), str(public_path), key_id(_public_raw(private_key.public_key())))


def _read_key_file(path: Path, kind: str) -> bytes:
    if not path.exists():
        raise InputError(f"{path}: no such {kind} key file")
    if not path.is_file():
        raise InputError(f"{path}: not a {kind} key file")
    if path.stat().st_size > MAX_KEY_FILE_BYTES:
        raise InputError(f"{path}: too large to be a {kind} key file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None


def load_private_key(path: str | os.PathLike[str]) -> Any:
    """An Ed25519 private key from a NAME.key file written by `edgekit keygen` (unencrypted PEM)."""
    ed25519, serialization = _crypto()
    source = Path(path)
    content = _read_key_file(source, "private")
    if b"PUBLIC KEY-----" in content:
        raise InputError(f"{source}: is a public key; signing needs the private key (NAME{PRIVATE_SUFFIX})")
    try:
        key = serialization.load_pem_private_key(content, password=None)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{source}: not a usable private key ({_first_line(exc)})") from None
    except Exception as exc:  # cryptography's UnsupportedAlgorithm and friends
        raise InputError(f"{source}: not a usable private key ({type(exc).__name__})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise InputError(f"{source}: not an Ed25519 key (edgekit signs with Ed25519; make one with edgekit keygen)")
    return key


def load_public_key(path: str | os.PathLike[str]) -> Any:
    """An Ed25519 public key from a NAME.pub file."""
    ed25519, serialization = _crypto()
    source = Path(path)
    content = _read_key_file(source, "public")
    if b"PRIVATE KEY-----" in content:
        raise InputError(
            f"{source}: is a private key; give devices the public key (NAME{PUBLIC_SUFFIX}) and keep this one secret"
        )
    try:
        key = serialization.load_pem_public_key(content)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{source}: not a usable public key ({_first_line(exc)})") from None
    except Exception as exc:  # cryptography's UnsupportedAlgorithm and friends
        raise InputError(f"{source}: not a usable public key ({type(exc).__name__})") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise InputError(f"{source}: not an Ed25519 public key (make keys with edgekit keygen)")
    return key


def _first_line(exc: BaseException) -> str:
    """The first sentence of an error, without cryptography's "See https://... for more details"."""
    text = str(exc).strip().splitlines()
    if not text:
        return type(exc).__name__
    first = text[0].split(" See http", 1)[0].rstrip(" .")
    return first[:160] or type(exc).__name__


# --- the signature file ----------------------------------------------------------------------


@dataclass(frozen=True)
class SignatureFile:
    """`edgekit.sig`: which key signed the manifest, and the signature."""

    key_id: str
    signature: bytes
    algorithm: str = ALGORITHM
    signed_file: str = MANIFEST_NAME

    def to_json(self) -> str:
        data = {
            "algorithm": self.algorithm,
            "key_id": self.key_id,
            "signed_file": self.signed_file,
            "signature": base64.b64encode(self.signature).decode("ascii"),
        }
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def read(cls, path: Path, shown: str) -> SignatureFile:
        """Parse a signature file; anything malformed is an integrity failure (exit 4)."""
        if path.is_symlink() or not path.is_file():
            raise IntegrityError(f"{shown}: not a regular file")
        if path.stat().st_size > MAX_SIGNATURE_FILE_BYTES:
            raise IntegrityError(f"{shown}: too large to be a signature file")
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
        except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise IntegrityError(f"{shown}: not a valid signature file ({_first_line(exc)})") from None
        if not isinstance(data, dict):
            raise IntegrityError(f"{shown}: not a valid signature file (expected a JSON object)")
        for key in ("algorithm", "key_id", "signed_file", "signature"):
            if not isinstance(data.get(key), str):
                raise IntegrityError(f"{shown}: not a valid signature file (field '{key}' missing or not a string)")
        if data["algorithm"] != ALGORITHM:
            raise IntegrityError(f"{shown}: algorithm {data['algorithm']!r:.40} is not {ALGORITHM}")
        if data["signed_file"] != MANIFEST_NAME:
            raise IntegrityError(f"{shown}: signs {data['signed_file']!r:.40}, expected {MANIFEST_NAME}")
        try:
            signature = base64.b64decode(data["signature"], validate=True)
        except (binascii.Error, ValueError):
            raise IntegrityError(f"{shown}: field 'signature' is not base64") from None
        if len(signature) != 64:
            raise IntegrityError(f"{shown}: an Ed25519 signature has 64 bytes, this one has {len(signature)}")
        return cls(key_id=data["key_id"][:64], signature=signature)


@dataclass(frozen=True)
class SignatureCheck:
    """A signature that was checked against a trusted key and found good."""

    key_id: str
    trusted_key: str

    def to_dict(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "trusted_key": self.trusted_key}


def verify_signature(
    folder: Path, manifest_bytes: bytes, trusted_key: str | os.PathLike[str], shown_as: str | None = None
) -> SignatureCheck:
    """Check that `manifest_bytes` carry a valid signature by `trusted_key` (exit 4 if not)."""
    shown = shown_as or str(folder)
    public_key = load_public_key(trusted_key)
    trusted_id = key_id(_public_raw(public_key))
    path = folder / SIGNATURE_NAME
    if not path.exists() and not path.is_symlink():
        raise IntegrityError(
            f"{shown}: not signed (no {SIGNATURE_NAME}), but --trusted-key {trusted_key} requires a signature"
        )
    signature = SignatureFile.read(path, f"{shown}/{SIGNATURE_NAME}")
    if signature.key_id != trusted_id:
        raise IntegrityError(
            f"{shown}/{SIGNATURE_NAME}: signed by key {signature.key_id}, not by the trusted key "
            f"{trusted_id} ({trusted_key})"
        )
    from cryptography.exceptions import InvalidSignature

    try:
        public_key.verify(signature.signature, manifest_bytes)
    except InvalidSignature:
        raise IntegrityError(
            f"{shown}/{MANIFEST_NAME}: signature by key {trusted_id} does not match "
            "(the manifest changed after signing, or the signature is forged)"
        ) from None
    return SignatureCheck(trusted_id, str(trusted_key))


# --- signing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignResult:
    """The result of `edgekit sign`."""

    bundle: str
    signature_file: str
    key_id: str

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": self.bundle, "signature_file": self.signature_file, "key_id": self.key_id}


def _sign_folder(bundle: Bundle, private_key: Any) -> str:
    manifest_bytes = read_manifest_bytes(bundle.path, bundle.origin)
    signature = SignatureFile(key_id(_public_raw(private_key.public_key())), private_key.sign(manifest_bytes))
    _write_atomically(bundle.path / SIGNATURE_NAME, signature.to_json().encode("utf-8"), 0o644)
    return signature.key_id


def sign_bundle(bundle: str | os.PathLike[str], key: str | os.PathLike[str]) -> SignResult:
    """Sign a bundle folder or `.tar.gz` in place. Its files are verified first: signing a bundle
    that no longer matches its manifest would vouch for something nobody built."""
    private_key = load_private_key(key)
    source = Path(bundle)
    if source.is_dir():
        with open_bundle(source) as opened:
            kid = _sign_folder(opened, private_key)
        return SignResult(str(source), str(source / SIGNATURE_NAME), kid)
    with open_bundle(source) as opened:
        kid = _sign_folder(opened, private_key)
        # Repacked next to the original and renamed over it: the archive is never half-written.
        pack_archive(opened.path, source, force=True)
    return SignResult(str(source), f"{opened.origin}/{SIGNATURE_NAME}", kid)


# --- verifying -------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedFile:
    name: str
    bytes: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "bytes": self.bytes, "sha256": self.sha256}


@dataclass(frozen=True)
class VerifyReport:
    """The result of `edgekit verify`: what was checked and found good.

    `signed` says a signature file is present; `signature_verified` is true only when it was checked
    against a trusted key (without one, the key id is reported but proves nothing)."""

    bundle: str
    name: str
    target: str
    quantization: str
    schema: int
    files: tuple[VerifiedFile, ...]
    signed: bool
    signature_verified: bool
    key_id: str | None
    trusted_key: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": self.bundle,
            "name": self.name,
            "target": self.target,
            "quantization": self.quantization,
            "schema": self.schema,
            "files": [f.to_dict() for f in self.files],
            "signed": self.signed,
            "signature_verified": self.signature_verified,
            "key_id": self.key_id,
            "trusted_key": self.trusted_key,
        }


def verify_bundle(bundle: str | os.PathLike[str], trusted_key: str | os.PathLike[str] | None = None) -> VerifyReport:
    """Check a bundle without running it: manifest schema, every file's size and SHA-256, that the
    model is a TFLite flatbuffer, and with `trusted_key` the signature. Raises on the first failure."""
    with open_bundle(bundle, trusted_key=trusted_key) as opened:
        manifest = opened.manifest
        with open(opened.model_path, "rb") as handle:
            check_tflite_header(handle.read(8), f"{opened.origin}/{MODEL_NAME}")
        signature_path = opened.path / SIGNATURE_NAME
        signed = signature_path.exists()
        kid = SignatureFile.read(signature_path, f"{opened.origin}/{SIGNATURE_NAME}").key_id if signed else None
        return VerifyReport(
            bundle=str(bundle),
            name=manifest.name,
            target=str(manifest.target.get("name", "")),
            quantization=manifest.quantization,
            schema=manifest.schema,
            files=tuple(VerifiedFile(n, e.bytes, e.sha256) for n, e in sorted(manifest.files.items())),
            signed=signed,
            signature_verified=trusted_key is not None,
            key_id=kid,
            trusted_key=None if trusted_key is None else str(trusted_key),
        )
