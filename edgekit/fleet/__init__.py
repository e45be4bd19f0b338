"""Fleets: edgekit's commands on every device of an Ansible inventory, in parallel, and deploy/rollback.

Ansible is the engine (inventories, groups, --limit, forks, bastions, vault) and runs in its own
process; edgekit talks to each device through its own action plugin (`ansible_plugins/`), which sends
edgekit's device half and the bundle (cached on the device by content) and runs one command there.
"""
