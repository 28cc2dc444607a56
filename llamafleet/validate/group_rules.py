"""Rules about group data, where pyinfra lets a mistake slide without a word:

- a value in the inventory's own group data that a group_data/<group>.py file replaces;
- a group's value replaced by another group's that comes later in the inventory (pyinfra: of a
  host's groups, the later one wins), when the replaced group is the narrower one: a group of
  some phones (a device class) is written to override `termux`, not to be overridden by it;
- group data for a group no host belongs to (group_data/pixl7.py beside a group `pixel7`).
"""

from __future__ import annotations

from typing import Any, Mapping

from llamafleet.inventory_data import TERMUX_GROUP, InventoryHost, ShadowedKey
from llamafleet.validate.findings import CLUSTER, Findings, Problem
from llamafleet.settings import suggest

# The deploy's per-platform group files (group_data/termux.py, linux.py): an inventory of phones
# alone has no `linux` group, and that is no mistake.
PLATFORM_GROUPS = (TERMUX_GROUP, "linux")


def shadowed_problems(shadowed: list[ShadowedKey]) -> list[Problem]:
    """An inventory value that a group data file silently replaces is a mistake to point out."""
    return [
        Problem(CLUSTER, item.key, f"{item.inventory_value!r} in the inventory's group '{item.group}' "
                f"is replaced by {item.effective_value!r} from group_data/{item.group}.py (pyinfra "
                "loads group data files over inventory group data); set it in one place")
        for item in shadowed
    ]


def _members(hosts: list[InventoryHost]) -> dict[str, set[str]]:
    members: dict[str, set[str]] = {}
    for host in hosts:
        for group in host.groups:
            members.setdefault(group, set()).add(host.name)
    return members


def check_later_group_wins(findings: Findings, hosts: list[InventoryHost],
                           group_data: Mapping[str, Mapping[str, Any]]) -> None:
    members = _members(hosts)
    for host in hosts:
        for key, value in host.data.items():
            setters = [group for group in host.groups if key in group_data.get(group, {})]
            if len(setters) < 2 or host.where(key) != f"group '{setters[-1]}'":
                continue  # one group sets it, or host data (or --data) decides
            winner = setters[-1]
            for group in setters[:-1]:
                theirs = group_data[group][key]
                if theirs != value and members[group] <= members[winner]:
                    findings.report(host.name, key, f"{theirs!r} from group '{group}' is replaced by "
                                    f"{value!r} from group '{winner}', which comes later in the "
                                    f"inventory (pyinfra: the later group wins); declare '{group}' "
                                    f"after '{winner}', or set the key in host data")


def check_unused_group_data(findings: Findings, hosts: list[InventoryHost],
                            group_data: Mapping[str, Mapping[str, Any]]) -> None:
    used = set(_members(hosts))
    for group, data in group_data.items():
        if group in used or group in PLATFORM_GROUPS:
            continue
        for key in data:
            findings.report(CLUSTER, key, f"set for group '{group}' (group_data/{group}.py or the "
                            f"inventory), which no host belongs to: it applies to none"
                            f"{suggest(group, used)}")


def check_groups(findings: Findings, hosts: list[InventoryHost],
                 group_data: Mapping[str, Mapping[str, Any]]) -> None:
    check_unused_group_data(findings, hosts, group_data)
    check_later_group_wins(findings, hosts, group_data)
