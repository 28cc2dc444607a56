"""Firewall rules for Linux hosts: RPC ports open to the master only, the API to its allowed sources.

llama.cpp's RPC has no authentication, so on a host that can firewall, only the master may reach a
worker's port. Everything else on the host (SSH above all) is left as it was: llamafleet owns one
chain (iptables) or one table (nftables) and only touches traffic to its own ports. A host with
ufw or firewalld gets its rules through that tool instead (firewall_ufw, firewall_firewalld), and
firewall_retire removes what llamafleet left in a backend the host no longer uses.

Which rules a host gets and which backend holds them is the plan's decision
(llamafleet.plan.firewall). Each backend has a fact that reads the live rules in a normalised
form and an operation that compares them with the wanted ones and yields commands only for a
difference. The rules files
and the lines the services run to restore them are rendered from templates/ (etc/iptables,
etc/nftables.d, firewall/, prestart/); the wanted rules are read back from the rendered file, so
the template decides them, an edited one included.
"""

from __future__ import annotations

import json
import re

from pyinfra import host
from pyinfra.api import FactBase, QuoteString, StringCommand, operation

# The rules themselves are the plan's (llamafleet.plan.firewall); named here for the operations.
from llamafleet.plan.firewall import FirewallPolicy, PortRule, effective_backend, policy_for
from llamafleet.templates import render, render_lines

__all__ = ["CHAIN", "NFT_TABLE", "FirewallBackend", "FirewallPolicy", "IptablesChain", "NftTable", "PortRule",
           "effective_backend", "iptables_chain", "nftables_table", "policy_for", "restore_commands"]

CHAIN = "LLAMAFLEET"
NFT_TABLE = "llamafleet"
IPTABLES_RULES_FILE = "/etc/iptables/llamafleet.rules"
NFT_RULES_FILE = "/etc/nftables.d/llamafleet.nft"


def _cidr(source: str) -> str:
    return source if "/" in source else f"{source}/32"


def iptables_restore_file(policy: FirewallPolicy) -> str:
    """An iptables-restore file that replaces the chain atomically (declaring it flushes it)."""
    return render("etc/iptables/llamafleet.rules.j2", chain=CHAIN, rules=policy.rules, cidr=_cidr)


def iptables_rules(policy: FirewallPolicy) -> list[str]:
    """The chain's rules exactly as `iptables -S LLAMAFLEET` prints them, in order: the -A lines
    of the rules file."""
    return [line for line in iptables_restore_file(policy).splitlines() if line.startswith("-A ")]


class IptablesChain(FactBase):
    """
    The rules of one iptables chain and whether INPUT jumps to it; None without iptables.

    .. code:: python

        {"rules": ["-A LLAMAFLEET -s 198.18.0.21/32 -p tcp -m tcp --dport 50052 -j ACCEPT"],
         "exists": True, "jump": True}
    """

    def command(self, chain: str = CHAIN) -> str:
        return (
            "command -v iptables >/dev/null 2>&1 || { echo NO-IPTABLES; exit 0; }; "
            f"iptables -w -S {chain} 2>/dev/null || echo NO-CHAIN; "
            f"iptables -w -C INPUT -j {chain} 2>/dev/null && echo JUMP; "
            f"{jump_is_first(chain)} && echo FIRST || true"
        )

    def process(self, output):
        lines = [line.strip() for line in output if line.strip()]
        if "NO-IPTABLES" in lines:
            return None
        return {
            "rules": [line for line in lines if line.startswith("-A ")],
            "exists": "NO-CHAIN" not in lines,
            "jump": "JUMP" in lines,
            "first": "FIRST" in lines,
        }


def jump_is_first(chain: str) -> str:
    """A shell test: INPUT's first rule is the jump to `chain` (a broad ACCEPT before it would
    open the protected ports to everyone)."""
    return f"iptables -w -S INPUT | grep -m1 '^-A ' | grep -qx -- '-A INPUT -j {chain}'"


def jump_first_command(chain: str = CHAIN) -> str:
    """One shell line that makes the jump INPUT's first rule, moving it when it stands elsewhere."""
    return render("firewall/iptables-jump-first.sh.j2", chain=chain, jump_is_first=jump_is_first(chain)).strip()


@operation()
def iptables_chain(policy: FirewallPolicy, rules_file: str = IPTABLES_RULES_FILE):
    """
    Make llamafleet's iptables chain hold exactly the policy's rules, and INPUT jump to it.

    + policy: the ports to protect and who may reach them
    + rules_file: where the rules are kept (persisted) and restored from

    **Example:**

    .. code:: python

        iptables_chain(name="Protect RPC", policy=FirewallPolicy([PortRule(50052, ("198.18.0.21",))]))
    """
    live = host.get_fact(IptablesChain)
    wanted = iptables_rules(policy)
    if live is None:
        raise ValueError(f"{host.name}: firewall_backend: iptables is not installed on this host")
    if live["rules"] == wanted and live["exists"]:
        host.noop(f"iptables chain {CHAIN} has the {len(wanted)} wanted rules")
    else:
        yield StringCommand("mkdir", "-p", QuoteString(rules_file.rsplit("/", 1)[0]))
        yield StringCommand(
            "printf", "%s", QuoteString(iptables_restore_file(policy)), ">", QuoteString(rules_file)
        )
        yield StringCommand("iptables-restore", "-w", "--noflush", QuoteString(rules_file))
    if not live.get("first"):
        # First position: a broad ACCEPT earlier in INPUT would otherwise open the ports anyway;
        # a jump that something pushed down is moved back to the top.
        if live["jump"]:
            yield StringCommand("sh", "-c", QuoteString(jump_first_command(CHAIN)))
        else:
            yield StringCommand("iptables", "-w", "-I", "INPUT", "1", "-j", CHAIN)


def nft_rules_file(policy: FirewallPolicy) -> str:
    """An nft script that (re)creates llamafleet's table atomically."""
    return render("etc/nftables.d/llamafleet.nft.j2", table=NFT_TABLE, rules=policy.rules)


_NFT_DPORT = re.compile(r"\btcp dport (\d+)\b")
_NFT_SADDR = re.compile(r"\bip saddr (\{[^}]*\}|\S+)")


def nft_policy_signature(policy: FirewallPolicy) -> list[list]:
    """What the table must express, in the shape NftTable returns: [port, sorted source CIDRs]
    per port, in rule order, read from the rules file's `tcp dport` rules (as NftTable reads the
    live ones: every source of a port's rules, loopback's rule adding none)."""
    ports: dict[int, list[str]] = {}
    for line in nft_rules_file(policy).splitlines():
        line = line.split("#", 1)[0]
        port = _NFT_DPORT.search(line)
        if not port:
            continue
        saddr = _NFT_SADDR.search(line)
        sources = saddr.group(1).strip("{ }").split(",") if saddr else []
        ports.setdefault(int(port.group(1)), []).extend(_cidr(s.strip()) for s in sources if s.strip())
    return [[port, sorted(sources)] for port, sources in ports.items()]


class NftTable(FactBase):
    """
    llamafleet's nftables table reduced to [port, sorted source CIDRs] per protected port, in
    rule order; [] when the table is absent; None without nft.

    .. code:: python

        [[50052, ["198.18.0.21/32"]]]
    """

    def command(self) -> str:
        return (
            "command -v nft >/dev/null 2>&1 || { echo NO-NFT; exit 0; }; "
            f"nft -j list table inet {NFT_TABLE} 2>/dev/null || echo '{{}}'"
        )

    def process(self, output):
        text = "\n".join(output)
        if "NO-NFT" in text:
            return None
        try:
            items = json.loads(text or "{}").get("nftables", [])
        except ValueError:
            return []
        ports: dict[int, list[str]] = {}
        for item in items:
            rule = item.get("rule")
            if not rule:
                continue
            port, sources = None, []
            for expression in rule.get("expr", []):
                match = expression.get("match")
                if not match:
                    continue
                field_name = match.get("left", {}).get("payload", {}).get("field")
                right = match.get("right")
                if field_name == "dport":
                    port = right
                elif field_name == "saddr":
                    values = right.get("set", [right]) if isinstance(right, dict) else [right]
                    for value in values:
                        if isinstance(value, dict) and "prefix" in value:
                            sources.append(f"{value['prefix']['addr']}/{value['prefix']['len']}")
                        else:
                            sources.append(_cidr(str(value)))
            if port is not None:
                ports.setdefault(port, []).extend(sources)
        return [[port, sorted(sources)] for port, sources in ports.items()]


@operation()
def nftables_table(policy: FirewallPolicy, rules_file: str = NFT_RULES_FILE):
    """
    Make llamafleet's nftables table express exactly the policy.

    + policy: the ports to protect and who may reach them
    + rules_file: where the table definition is kept (persisted) and loaded from
    """
    live = host.get_fact(NftTable)
    if live is None:
        raise ValueError(f"{host.name}: firewall_backend: nft is not installed on this host")
    if live == nft_policy_signature(policy):
        host.noop(f"nftables table {NFT_TABLE} protects {len(policy.rules)} ports")
        return
    yield StringCommand("mkdir", "-p", QuoteString(rules_file.rsplit("/", 1)[0]))
    yield StringCommand("printf", "%s", QuoteString(nft_rules_file(policy)), ">", QuoteString(rules_file))
    yield StringCommand("nft", "-f", QuoteString(rules_file))


def restore_commands(backend: str) -> list[str]:
    """Shell lines that put the saved rules back, for a service to run before it starts: the
    kernel forgets them at reboot and nothing else loads llamafleet's files at boot. Only for
    iptables and nftables (plan.firewall.services_restore_rules): ufw and firewalld restore theirs."""
    if backend == "iptables":
        return render_lines(
            "prestart/iptables.sh.j2", rules_file=IPTABLES_RULES_FILE, chain=CHAIN, jump_is_first=jump_is_first(CHAIN)
        )
    if backend == "nftables":
        return render_lines("prestart/nftables.sh.j2", rules_file=NFT_RULES_FILE)
    raise ValueError(f"firewall backend {backend!r} restores its own rules at boot: no prestart lines")


class FirewallBackend(FactBase):
    """
    The firewall the host has, most specific first: "firewalld" (running), "ufw" (active),
    "iptables", "nftables", or None.
    """

    def command(self) -> str:
        return (
            "if command -v firewall-cmd >/dev/null 2>&1 && firewall-cmd --state >/dev/null 2>&1; then echo firewalld; "
            "elif command -v ufw >/dev/null 2>&1 && LC_ALL=C ufw status 2>/dev/null | grep -q 'Status: active'; then echo ufw; "
            "elif command -v iptables >/dev/null 2>&1; then echo iptables; "
            "elif command -v nft >/dev/null 2>&1; then echo nftables; "
            "else echo none; fi"
        )

    def process(self, output):
        value = "".join(output).strip()
        return None if value in ("", "none") else value
