"""`edgekit deploy`: install a bundle on a device or a fleet, verified before the switch; or roll back."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from edgekit.cli.options import PATH, Command, argument, json_option, option, trusted_key_option
from edgekit.cli.output import reports_errors


@click.command("deploy", cls=Command)
@argument("bundle", "[BUNDLE]", "A bundle folder or its .tar.gz (none with --rollback).", required=False)
@option(
    "--on",
    "on",
    required=True,
    metavar="HOST|@INVENTORY",
    help="[user@]host[:port] or an SSH config name, or @FILE: every host of an Ansible inventory.",
)
@option("--limit", metavar="PATTERN", help="Only the inventory's hosts matching this Ansible pattern.")
@option(
    "--to",
    metavar="PATH",
    help="Where bundles live on the device: PATH/NAME/current. Default: ~/.local/share/edgekit/bundles.",
)
@trusted_key_option("Public key NAME.pub: install only a bundle it signed (checked here and on each device).")
@option("--ssh-config", type=PATH, metavar="FILE", help="SSH config file instead of ~/.ssh/config (like ssh -F).")
@option(
    "--remote-python",
    metavar="PATH",
    help="The device's Python, where the inventory sets no ansible_python_interpreter. Default: python3.",
)
@option("--rollback", metavar="NAME", help="Make the previous version of bundle NAME current again (no BUNDLE).")
@json_option("Print a JSON list of per-host results.")
@option("--verbose", "-v", is_flag=True, help="Show Ansible's own output.")
@reports_errors
def deploy(
    bundle: Optional[Path],
    on: str,
    limit: Optional[str],
    to: Optional[str],
    trusted_key: Optional[Path],
    ssh_config: Optional[Path],
    remote_python: Optional[str],
    rollback: Optional[str],
    as_json: bool,
    verbose: bool,
) -> None:
    """Install a bundle at ~/.local/share/edgekit/bundles/NAME/current on each device, keeping the previous one.

    The bundle is verified on the device (its files, and its signature with --trusted-key) before
    `current` is switched to it in one atomic step; a deploy that fails or is interrupted leaves the
    old bundle current. Exit 4 when a device refuses the bundle, 5 when one is unreachable.
    """
    from edgekit.cli.fleet_output import finish, render_deploy
    from edgekit.cli.progress_bar import ProgressBar
    from edgekit.fleet import deploy as fleet_deploy

    if (bundle is None) == (rollback is None):
        raise click.UsageError("give either BUNDLE or --rollback NAME")
    if rollback is not None and trusted_key is not None:
        raise click.UsageError("--trusted-key checks a bundle being installed, not a rollback")
    with ProgressBar(f"deploy to {on}", enabled=not as_json) as bar:
        reach = {"limit": limit, "progress": bar, "verbose": verbose, "ssh_config": ssh_config,
                 "remote_python": remote_python}  # fmt: skip
        if rollback is not None:
            report = fleet_deploy.rollback(rollback, on, to=to, **reach)
        else:
            report = fleet_deploy.deploy(bundle, on, to=to, trusted_key=trusted_key, **reach)
    finish(report, as_json, render_deploy)
