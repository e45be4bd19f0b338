"""`edgekit keygen`, `edgekit sign` and `edgekit verify`: who built a bundle, and is it intact?"""

from __future__ import annotations

from pathlib import Path

import click

from edgekit.cli.options import Command, argument, json_option, option, trusted_key_option
from edgekit.cli.output import console, human_bytes, print_json, reports_errors


@click.command("keygen", cls=Command)
@argument("name", "NAME", "Writes NAME.key (private, mode 0600) and NAME.pub (public).")
@option("--force", is_flag=True, help="Overwrite existing key files.")
@json_option("Print the result as JSON.")
@reports_errors
def keygen(name: Path, force: bool, as_json: bool) -> None:
    """Make an Ed25519 key pair for signing bundles. Keep NAME.key on the build machine; copy NAME.pub to devices."""
    from edgekit.signing import generate_keypair

    pair = generate_keypair(name, force=force)
    if as_json:
        print_json(pair.to_dict())
        return
    console().print(
        f"wrote {pair.private_key} (private: keep it secret, mode 600) and {pair.public_key} "
        f"(give it to devices: --trusted-key); key id {pair.key_id}"
    )


@click.command("sign", cls=Command)
@argument("bundle", "BUNDLE", "A bundle folder or its .tar.gz (signed in place).")
@option(
    "--key",
    type=click.Path(path_type=Path),
    required=True,
    metavar="FILE",
    help="The private key NAME.key from edgekit keygen.",
)
@json_option("Print the result as JSON.")
@reports_errors
def sign(bundle: Path, key: Path, as_json: bool) -> None:
    """Sign a bundle: writes edgekit.sig, an Ed25519 signature over its manifest (which lists every file's SHA-256)."""
    from edgekit.signing import sign_bundle

    result = sign_bundle(bundle, key)
    if as_json:
        print_json(result.to_dict())
        return
    console().print(f"signed {result.bundle} with key {result.key_id} ({result.signature_file})")


@click.command("verify", cls=Command)
@argument("bundle", "BUNDLE", "A bundle folder or its .tar.gz.")
@trusted_key_option("Public key NAME.pub: refuse (exit 4) a bundle it did not sign.")
@json_option("Print the result as JSON.")
@reports_errors
def verify(bundle: Path, trusted_key: Path | None, as_json: bool) -> None:
    """Check a bundle without running it: manifest, every file's SHA-256 and, with --trusted-key, the signature.

    Exit 4 when a file is missing, extra or changed, or the signature is missing or wrong.
    """
    from edgekit.signing import verify_bundle

    report = verify_bundle(bundle, trusted_key=trusted_key)
    if as_json:
        print_json(report.to_dict())
        return
    out = console()
    out.print(
        f"{report.bundle}: OK, {report.name} ({report.quantization}, target {report.target}), "
        f"manifest schema {report.schema}"
    )
    for entry in report.files:
        out.print(f"  {entry.name}  {human_bytes(entry.bytes)}  sha256 {entry.sha256[:16]}…  matches")
    if report.signature_verified:
        out.print(f"signature: good, by trusted key {report.key_id} ({report.trusted_key})")
    elif report.signed:
        out.print(f"signature: present (key {report.key_id}), not checked: pass --trusted-key NAME.pub")
    else:
        out.print("signature: none (unsigned bundle)")
