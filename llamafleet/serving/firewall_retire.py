"""Retiring what llamafleet left in a firewall backend the host no longer uses.

A host moves from one backend to another when `firewall_backend` changes, or when ufw is enabled
or firewalld started (or stopped) since the last deploy. llamafleet's rules in the old backend
would stay: an iptables chain beside ufw, a table beside firewalld's, ufw rules or rich rules for
a port nobody guards any more. tasks/network.py makes the new backend's rules first, then
retires the others, so the ports are never open in between. Each trace is removed only when it
is there (iptables(8) `-D`/`-F`/`-X`, nft(8) `delete table`, ufw(8) `delete RULE`,
firewall-cmd(1) `--remove-rich-rule`); a host without any gets no command. `llamafleet remove`
retires them from all four backends (keep=None).
"""

from __future__ import annotations

import shlex

from pyinfra import host, logger
from pyinfra.api import FactBase, QuoteString, StringCommand, operation

from llamafleet.serving.firewall import CHAIN, IPTABLES_RULES_FILE, NFT_RULES_FILE, NFT_TABLE
from llamafleet.serving.firewall_firewalld import RECORD_FILE, FirewalldRichRules, remove_commands
from llamafleet.serving.firewall_ufw import UfwRules, is_ours, parse_rule, ufw_command

__all__ = ["FirewallTraces", "retire_other_backends"]

_FLAGS = ("iptables_chain", "iptables_file", "nft_table", "nft_file", "ufw", "firewalld_record")


class FirewallTraces(FactBase):
    """
    What llamafleet's backends may have left on the host: its iptables chain, how many jumps
    INPUT has to it, its nftables table, their rules files; whether ufw is installed (its rules
    are read only then) and whether the firewalld record exists. One cheap command for a host
    that has none of them.

    .. code:: python

        {"iptables_chain": True, "iptables_jumps": 1, "iptables_file": True, "nft_table": False,
         "nft_file": False, "ufw": False, "firewalld_record": False}
    """

    def command(self, record_file: str = RECORD_FILE) -> str:
        return (
            "if command -v iptables >/dev/null 2>&1; then "
            f"iptables -w -S {CHAIN} >/dev/null 2>&1 && echo iptables_chain; "
            f"echo \"iptables_jumps $(iptables -w -S INPUT 2>/dev/null | grep -cx -- '-A INPUT -j {CHAIN}')\"; fi; "
            f"command -v nft >/dev/null 2>&1 && nft list table inet {NFT_TABLE} >/dev/null 2>&1 && echo nft_table; "
            f"[ -e {IPTABLES_RULES_FILE} ] && echo iptables_file; [ -e {NFT_RULES_FILE} ] && echo nft_file; "
            f"command -v ufw >/dev/null 2>&1 && echo ufw; [ -f {shlex.quote(record_file)} ] && echo firewalld_record; true"
        )

    @staticmethod
    def default() -> dict:
        # No output: a host with none of the tools and files, hence no trace of any backend.
        return {**{flag: False for flag in _FLAGS}, "iptables_jumps": 0}

    def process(self, output):
        lines = [line.strip() for line in output if line.strip()]
        traces = {flag: flag in lines for flag in _FLAGS}
        jumps = [line.split()[1] for line in lines if line.startswith("iptables_jumps ") and len(line.split()) == 2]
        traces["iptables_jumps"] = int(jumps[0]) if jumps and jumps[0].isdigit() else 0
        return traces


def _iptables_and_nftables(keep: str | None, traces: dict) -> list[StringCommand]:
    commands = []
    if keep != "iptables":
        # Jumps first: a chain that something still jumps to cannot be deleted.
        commands += [StringCommand("iptables", "-w", "-D", "INPUT", "-j", CHAIN)] * traces["iptables_jumps"]
        if traces["iptables_chain"]:
            commands += [StringCommand("iptables", "-w", "-F", CHAIN), StringCommand("iptables", "-w", "-X", CHAIN)]
        if traces["iptables_file"]:
            commands.append(StringCommand("rm", "-f", QuoteString(IPTABLES_RULES_FILE)))
    if keep != "nftables":
        if traces["nft_table"]:
            commands.append(StringCommand("nft", "delete", "table", "inet", NFT_TABLE))
        if traces["nft_file"]:
            commands.append(StringCommand("rm", "-f", QuoteString(NFT_RULES_FILE)))
    return commands


def _ufw() -> list[StringCommand]:
    live = host.get_fact(UfwRules)
    if not live:
        return []
    return [ufw_command("delete", words) for words in live["rules"] if words[0] != "?" and is_ours(parse_rule(words))]


def _firewalld(record_file: str) -> list[StringCommand]:
    live = host.get_fact(FirewalldRichRules, record_file=record_file)
    record = live["record"]
    if record is None:
        return []
    if not live["running"]:
        # firewall-cmd needs the daemon; the record stays, so a later deploy retires the rules.
        logger.warning(f"{host.name}: firewalld is not running: llamafleet's rich rules recorded in {record_file} "
                       "stay in its permanent configuration until a deploy finds it running")
        return []
    if record["zone"] in (None, live["zone"]):
        commands = remove_commands(live["zone"], record["rules"], live["permanent"], live["runtime"])
    else:
        commands = remove_commands(record["zone"], record["rules"])
    return [*commands, StringCommand("rm", "-f", QuoteString(record_file))]


@operation()
def retire_other_backends(keep: str | None, record_file: str = RECORD_FILE):
    """
    Remove llamafleet's rules from every firewall backend but `keep`, where there are any.

    + keep: the backend that holds llamafleet's rules now ("iptables", "nftables", "ufw",
      "firewalld"); None retires them from all four (`llamafleet remove`)
    + record_file: where llamafleet records the firewalld rich rules it added

    **Example:**

    .. code:: python

        retire_other_backends(name="Firewall: retire other backends", keep="ufw")
    """
    traces = host.get_fact(FirewallTraces, record_file=record_file)
    commands = _iptables_and_nftables(keep, traces)
    if keep != "ufw" and traces["ufw"]:
        commands += _ufw()
    if keep != "firewalld" and traces["firewalld_record"]:
        commands += _firewalld(record_file)
    if not commands:
        host.noop(f"no llamafleet rules outside {keep}" if keep else "no llamafleet rules in any firewall backend")
    yield from commands
