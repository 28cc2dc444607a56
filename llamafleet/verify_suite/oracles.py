"""Independent oracles for the verify suite: what a cluster must look like, written from the
documented policy (README "Security by default", group_data/all.py) in plain terms, and parsers
of what the kernel and sshd print.

Nothing here calls llamafleet's generators (firewall.iptables_rules, nft_rules_file, the plan's
port and address functions): a check built from the product's own output agrees with the
product whatever it does. The expected values come from the inventory's inputs (addresses,
ports, api_allowed_sources) and the live rules from `iptables -S` / `nft -j list`.

The policy, as documented:
- a worker whose rpc-server listens beyond loopback admits TCP to its RPC port from the master's
  cluster address only, then drops the port for everyone else;
- the master's API port admits the master itself and `api_allowed_sources`, then drops;
- loopback traffic (interface lo) to those ports is admitted (the host itself; it cannot come
  from the network);
- nothing else is touched: no rule about another port.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
import socket
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

ANYWHERE = "0.0.0.0/0"
LOOPBACK = "iface:lo"  # a rule matching the loopback interface (`-i lo`, `iif "lo"`)
ACCEPT, DROP = "ACCEPT", "DROP"


@dataclass(frozen=True, order=True)
class Rule:
    """One firewall rule as (source, port, target). `source` is a CIDR, ANYWHERE or LOOPBACK;
    a rule the parser does not fully understand gets target "UNPARSED: <text>"."""

    source: str
    port: int | None
    target: str


# --- the policy's inputs, from inventory data --------------------------------------------------


def cluster_address(name: str, data: Mapping[str, Any]) -> str:
    """group_data/all.py: `cluster_address`, default the host's `ssh_hostname`, else its name."""
    return data.get("cluster_address") or data.get("ssh_hostname") or name


def is_master(data: Mapping[str, Any]) -> bool:
    return data.get("llama_role") == "master"


def master_name(data_by_host: Mapping[str, Mapping[str, Any]]) -> str:
    masters = [name for name, data in data_by_host.items() if is_master(data)]
    assert len(masters) == 1, f"exactly one master expected in the inventory, found {masters}"
    return masters[0]


def worker_rpc_port(data_by_host: Mapping[str, Mapping[str, Any]], name: str,
                    recorded: Mapping[str, int] | None = None) -> int:
    """group_data/all.py: `rpc_port`, else the port the deploy recorded on the worker (README
    "Add or remove a device": a worker keeps the port of its first deploy; `recorded` maps a
    worker to the port in its <llamafleet_dir>/etc/rpc-port), else, on a first deploy,
    rpc_port_base + 0, 1, ... for the workers in inventory order (`data_by_host` keeps it)."""
    data = data_by_host[name]
    if data.get("rpc_port"):
        return int(data["rpc_port"])
    if recorded and recorded.get(name):
        return int(recorded[name])
    workers = [host for host, host_data in data_by_host.items() if not is_master(host_data)]
    return int(data.get("rpc_port_base", 50052)) + workers.index(name)


def worker_transport(data: Mapping[str, Any], is_termux: bool) -> str:
    """group_data/all.py: `rpc_transport`, default tunnel on Termux, direct on Linux."""
    return data.get("rpc_transport") or ("tunnel" if is_termux else "direct")


def worker_bind(name: str, data: Mapping[str, Any], is_termux: bool) -> str:
    """group_data/all.py: `rpc_bind`, default the cluster address (127.0.0.1 when tunnelled)."""
    if data.get("rpc_bind"):
        return data["rpc_bind"]
    return "127.0.0.1" if worker_transport(data, is_termux) == "tunnel" else cluster_address(name, data)


def _is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def cidr(source: str) -> str:
    """An address or network in the form the kernel prints (host bits cleared, /32 for one
    address); a host name is resolved here the way iptables resolves it when adding the rule."""
    try:
        return str(ipaddress.ip_network(source, strict=False))
    except ValueError:
        address = socket.getaddrinfo(source, None, socket.AF_INET)[0][4][0]
        return str(ipaddress.ip_network(address))


def expected_rules(name: str, data_by_host: Mapping[str, Mapping[str, Any]], is_termux: bool = False,
                   recorded: Mapping[str, int] | None = None) -> list[Rule]:
    """The rules the host's firewall must hold, per protected port: loopback and the admitted
    sources ACCEPTed, then one DROP for everyone else (`recorded`: as for worker_rpc_port)."""
    data = data_by_host[name]
    admitted: dict[int, list[str]] = {}
    if is_master(data):
        sources = [cluster_address(name, data), *data.get("api_allowed_sources", [])]
        admitted[int(data.get("llama_server_port", 8080))] = sources
    elif not _is_loopback(worker_bind(name, data, is_termux)):
        master = master_name(data_by_host)
        admitted[worker_rpc_port(data_by_host, name, recorded)] = [cluster_address(master, data_by_host[master])]
    rules = []
    for port, sources in admitted.items():
        rules.append(Rule(LOOPBACK, port, ACCEPT))
        rules += [Rule(cidr(source), port, ACCEPT) for source in dict.fromkeys(sources)]
        rules.append(Rule(ANYWHERE, port, DROP))
    return rules


# --- parsers of the live rules -----------------------------------------------------------------


def parse_iptables_rules(lines: Iterable[str], chain: str) -> list[Rule]:
    """The `-A <chain>` lines of `iptables -S <chain>` as Rules, in order. Only what a port rule
    needs is understood (-s, -i lo, -p tcp, -m tcp, --dport, -j, comments); anything else (a
    negation, another match, an interface other than lo) makes the rule UNPARSED."""
    rules = []
    for line in lines:
        words = shlex.split(line)
        if words[:2] != ["-A", chain]:
            continue
        source, port, target, interface, protocol = ANYWHERE, None, None, None, None
        rest, understood = words[2:], True
        while rest:
            option = rest.pop(0)
            value = rest.pop(0) if rest else None
            if option == "-s" and value:
                source = cidr(value)
            elif option == "-i" and value:
                interface = value
            elif option == "-p" and value:
                protocol = value
            elif option == "-m" and value in ("tcp", "comment"):
                pass
            elif option == "--comment":
                pass
            elif option == "--dport" and value and value.isdigit():
                port = int(value)
            elif option == "-j" and value:
                target = value
            else:
                understood = False
                break
        if interface is not None:
            if interface == "lo" and source == ANYWHERE:
                source = LOOPBACK
            else:
                understood = False
        if port is not None and protocol != "tcp":
            understood = False
        if not understood or target is None:
            rules.append(Rule(source, port, f"UNPARSED: {line.strip()}"))
        else:
            rules.append(Rule(source, port, target))
    return rules


def input_jump_problems(input_lines: Iterable[str], chain: str) -> list[str]:
    """`iptables -S INPUT` must jump to the chain, unconditionally, as its FIRST rule: a broad
    ACCEPT earlier in INPUT (a user's, Docker's...) would open the protected ports anyway."""
    appended = [line.strip() for line in input_lines if line.startswith("-A INPUT ")]
    jump = f"-A INPUT -j {chain}"
    if jump not in appended:
        return [f"INPUT does not jump to {chain} (INPUT: {appended})"]
    if appended[0] != jump:
        return [f"INPUT's first rule is {appended[0]!r}, not the jump to {chain}: it is evaluated first"]
    return []


def _nft_sources(right: Any) -> list[str]:
    values = right.get("set", [right]) if isinstance(right, dict) and "set" in right else [right]
    sources = []
    for value in values:
        if isinstance(value, dict) and "prefix" in value:
            sources.append(cidr(f"{value['prefix']['addr']}/{value['prefix']['len']}"))
        elif isinstance(value, dict) and "range" in value:
            low, high = (ipaddress.ip_address(v) for v in value["range"])
            sources += [str(n) for n in ipaddress.summarize_address_range(low, high)]
        else:
            sources.append(cidr(str(value)))
    return sources


def _nft_rule(expressions: list[dict]) -> list[Rule]:
    sources, port, target, understood = [ANYWHERE], None, None, True
    for expression in expressions:
        if "counter" in expression:
            continue
        if "accept" in expression:
            target = ACCEPT
            continue
        if "drop" in expression:
            target = DROP
            continue
        match = expression.get("match")
        if not match or match.get("op") not in ("==", "in"):
            understood = False
            continue
        left, right = match.get("left", {}), match.get("right")
        meta = left.get("meta", {}).get("key")
        payload = left.get("payload", {})
        if meta in ("iif", "iifname") and right == "lo":
            sources = [LOOPBACK]
        elif payload.get("protocol") == "tcp" and payload.get("field") == "dport" and isinstance(right, int):
            port = right
        elif payload.get("protocol") == "ip" and payload.get("field") == "saddr":
            sources = _nft_sources(right)
        else:
            understood = False
    text = json.dumps(expressions)
    if not understood or target is None:
        return [Rule(sources[0], port, f"UNPARSED: {text}")]
    return [Rule(source, port, target) for source in sources]


@dataclass
class NftChain:
    name: str
    hook: str | None
    policy: str | None
    rules: list[Rule]


def parse_nft_table(text: str) -> list[NftChain]:
    """The chains of `nft -j list table ...` with their hooks and rules (a set of sources is
    one Rule per element)."""
    items = json.loads(text or "{}").get("nftables", [])
    chains: dict[str, NftChain] = {}
    for item in items:
        if "chain" in item:
            chain = item["chain"]
            chains[chain["name"]] = NftChain(chain["name"], chain.get("hook"), chain.get("policy"), [])
    for item in items:
        rule = item.get("rule")
        if rule:
            chains[rule["chain"]].rules += _nft_rule(rule.get("expr", []))
    return list(chains.values())


# --- the comparison ----------------------------------------------------------------------------


def _networks(rules: Iterable[Rule]) -> list[str]:
    networks = [ipaddress.ip_network(rule.source) for rule in rules if rule.source != LOOPBACK]
    return [str(network) for network in ipaddress.collapse_addresses(networks)]


def firewall_problems(live: list[Rule], expected: list[Rule]) -> list[str]:
    """How the live rules differ from the expected ones, in what they admit: per protected port
    the accepted sources (as address sets: the kernel may merge 198.18.0.11 into a /28 that
    holds it) and loopback, then one DROP from anywhere after every ACCEPT; nothing else."""
    problems = [f"rule not understood: {rule.target[10:]}" for rule in live if rule.target.startswith("UNPARSED")]
    ports = list(dict.fromkeys(rule.port for rule in expected))
    for rule in live:
        if rule.target.startswith("UNPARSED"):
            continue
        if rule.port not in ports:
            problems.append(f"rule for a port nothing protects: {rule}")
        elif rule.target not in (ACCEPT, DROP):
            problems.append(f"port {rule.port}: a {rule.target} rule, the policy has only ACCEPT and DROP: {rule}")
    for port in ports:
        wanted = [rule for rule in expected if rule.port == port]
        found = [rule for rule in live if rule.port == port]
        if not found:
            problems.append(f"port {port}: no rule at all")
            continue
        accepts = [rule for rule in found if rule.target == ACCEPT]
        drops = [index for index, rule in enumerate(found) if rule.target == DROP]
        if [found[index] for index in drops] != [Rule(ANYWHERE, port, DROP)]:
            problems.append(f"port {port}: wanted one DROP from anywhere, found {[found[i] for i in drops]}")
        elif drops[0] != len(found) - 1:
            problems.append(f"port {port}: rules after the DROP never apply: {found[drops[0] + 1:]}")
        live_networks = _networks(accepts)
        wanted_networks = _networks(rule for rule in wanted if rule.target == ACCEPT)
        if live_networks != wanted_networks:
            problems.append(f"port {port}: admits {live_networks}, the policy admits {wanted_networks}")
        if any(r.source == LOOPBACK for r in accepts) != any(r.source == LOOPBACK for r in wanted if r.target == ACCEPT):
            problems.append(f"port {port}: loopback admitted: {any(r.source == LOOPBACK for r in accepts)}")
    return problems


# --- authorized_keys ---------------------------------------------------------------------------

_KEY_TYPE = re.compile(r"^(ssh-|ecdsa-|sk-)")


def authorized_key_options(line: str) -> list[tuple[str, str | None]]:
    """The options of an authorized_keys line as (name, value) pairs, names lower-cased, quoted
    values unquoted (sshd(8) AUTHORIZED_KEYS FILE FORMAT); [] when the line has none."""
    line = line.strip()
    if _KEY_TYPE.match(line):
        return []
    options, current, quoted, index = [], "", False, 0
    while index < len(line):
        char = line[index]
        if char == "\\" and quoted and index + 1 < len(line):
            current += line[index + 1]
            index += 2
            continue
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            options.append(current)
            current = ""
        elif char in " \t" and not quoted:
            break
        else:
            current += char
        index += 1
    options.append(current)
    pairs = []
    for option in options:
        name, _, value = option.partition("=")
        pairs.append((name.lower(), value if "=" in option else None))
    return pairs
