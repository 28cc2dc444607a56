"""testinfra suite for any llamafleet cluster: `llamafleet verify inventory/x.py` runs it.

The inventory is loaded the way pyinfra loads it (host + group data); the plan is made from the
devices' live facts, exactly as deploy.py makes it, and every check compares a device with the
plan. Where to look on a device (its paths, service manager, binary, firewall backend) is the
plan's decision, read from it; what must be there comes from verify_suite/oracles.py. Each test
is parametrised per host, with the host's name as its id.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pytest

from llamafleet.gather import gather_facts
from llamafleet.inventory_data import load_inventory
from llamafleet.layout import paths_for
from llamafleet.plan import PORT_RECORD_FACT, Plan, PlannedHost, effective_transport, make_plan, model_size_from_data
from llamafleet.plan.firewall import gets_firewall
from llamafleet.settings import settings_for
from llamafleet.testinfra_ssh import verify_host


def pytest_addoption(parser):
    parser.addoption("--inventory", action="store", help="pyinfra inventory of the cluster to check")
    parser.addoption("--group-data", action="store", default=None, help="group data directory (default: the deploy's)")


def _inventory_option(config) -> str:
    path = config.getoption("--inventory") or os.environ.get("LLAMAFLEET_INVENTORY")
    if not path:
        raise pytest.UsageError("the verify suite needs --inventory INVENTORY (or LLAMAFLEET_INVENTORY)")
    return path


def _is_master(host) -> bool:
    return _settings(host).llama_role == "master"


def _settings(host):
    return settings_for(host.name, host.data)


def _platform(host) -> str:
    return "termux" if host.is_termux else "linux"


# Which hosts each per-host fixture runs over: a check only runs where it applies, so nothing
# is skipped for being the wrong kind of host. Chosen before any host is connected (the plan
# needs the facts): by the plan's own decision functions, on the inventory's platforms.
HOST_SELECTORS = {
    "node": lambda h: True,
    "master": _is_master,
    "worker": lambda h: not _is_master(h),
    "termux_worker": lambda h: not _is_master(h) and h.is_termux,
    "tunnel_worker": lambda h: not _is_master(h) and effective_transport(_settings(h), _platform(h)) == "tunnel",
    "linux_node": lambda h: not h.is_termux,
    "sysctl_node": lambda h: not h.is_termux and _settings(h).sysctl_enabled,
    "firewall_node": lambda h: gets_firewall(_settings(h), _platform(h)),
}


def pytest_generate_tests(metafunc):
    """Parametrise the per-host fixtures from the inventory's roles and platforms."""
    wanted = [name for name in HOST_SELECTORS if name in metafunc.fixturenames]
    if not wanted:
        return
    hosts = load_inventory(_inventory_option(metafunc.config), metafunc.config.getoption("--group-data"))
    for name in wanted:
        selected = [h.name for h in hosts if HOST_SELECTORS[name](h)]
        metafunc.parametrize(name, selected, ids=selected, indirect=True)


@dataclass
class Cluster:
    plan: Plan
    data: dict[str, dict[str, Any]]
    facts: dict[str, dict[str, Any]]

    def planned(self, name: str) -> PlannedHost:
        return next(h for h in self.plan.hosts if h.name == name)

    @property
    def recorded_ports(self) -> dict[str, int]:
        """The port each worker's record on the device names (what the deploy gave it)."""
        return {name: (facts.get(PORT_RECORD_FACT) or {}).get("rpc_port") for name, facts in self.facts.items()
                if (facts.get(PORT_RECORD_FACT) or {}).get("rpc_port")}


@pytest.fixture(scope="session")
def cluster(request) -> Cluster:
    gathered = gather_facts(_inventory_option(request.config), request.config.getoption("--group-data"))
    if gathered.errors:
        pytest.fail("cannot read facts: " + "; ".join(f"{k}: {v}" for k, v in gathered.errors.items()))
    model_mb = model_size_from_data(gathered.hosts[0].data)
    plan = make_plan(gathered.hosts, model_mb or 0)
    return Cluster(
        plan=plan,
        data={h.name: dict(h.data) for h in gathered.hosts},
        facts={h.name: dict(h.facts) for h in gathered.hosts},
    )


_CONNECTIONS: dict[str, Any] = {}


def testinfra_host(cluster: Cluster, name: str):
    """A testinfra host connected by pyinfra's SSH connector from the host's data (every ssh_*
    key as the deploy uses it); one per host for the session."""
    if name not in _CONNECTIONS:
        _CONNECTIONS[name] = verify_host(name, cluster.data[name])
    return _CONNECTIONS[name]


@dataclass
class Node:
    """One device under test: its plan entry, data, facts, paths and testinfra host."""

    name: str
    planned: PlannedHost
    data: dict[str, Any]
    facts: dict[str, Any]
    host: Any

    @property
    def platform(self) -> dict[str, Any]:
        return self.facts.get("DevicePlatform") or {}

    @property
    def settings(self):
        return settings_for(self.name, self.data)

    @property
    def paths(self):
        assert self.planned.base, f"{self.name}: the plan does not know where llamafleet lives (no home read)"
        return paths_for(self.planned.base)

    @property
    def is_termux(self) -> bool:
        return self.planned.platform == "termux"

    @property
    def service_manager(self) -> str:
        return self.planned.service_manager

    def shell(self, command: str) -> tuple[int, str]:
        """(exit status, stdout) of a shell command: the `run` of llamafleet.serving.listening."""
        result = self.host.run(command)
        return result.rc, result.stdout

    def sv(self, action: str, service: str):
        """Run runit's sv for the device's service directory."""
        svdir = f"{self.platform['prefix']}/var/service" if self.is_termux else "/etc/service"
        return self.host.run(f"SVDIR={svdir} sv {action} {service}")


def make_node(cluster: Cluster, name: str) -> Node:
    return Node(name, cluster.planned(name), cluster.data[name], cluster.facts[name], testinfra_host(cluster, name))


@pytest.fixture(scope="session")
def node_for(cluster):
    """Build the Node of any host by name (for checks that look at several hosts)."""
    return lambda name: make_node(cluster, name)


def _per_host_fixture(name: str):
    """The fixture `name` of HOST_SELECTORS: the Node of the host it is parametrised with.

    One factory instead of a hand-written fixture per selector, so adding a selector to
    HOST_SELECTORS is all a new kind of per-host check needs; pytest_generate_tests supplies
    `request.param` (the host's name, also the test id).
    """

    @pytest.fixture(name=name)
    def per_host(request, cluster) -> Node:
        return make_node(cluster, request.param)

    return per_host


# Module attributes under the fixture names, as hand-written fixtures would be: pytest finds
# fixtures by scanning the conftest module's attributes.
for _name in HOST_SELECTORS:
    globals()[_name] = _per_host_fixture(_name)
del _name


# Lines the checks report beside pass or fail (each worker's CPUs), printed at the end of the run.
_SUMMARY: list[str] = []


@pytest.fixture(scope="session")
def summary():
    """Add a line to what the run prints at its end (shown with -q too, unlike print)."""
    return _SUMMARY.append


def pytest_terminal_summary(terminalreporter):
    if _SUMMARY:
        terminalreporter.section("llamafleet")
        for line in _SUMMARY:
            terminalreporter.write_line(line)


def _controller_secret(config, name: str) -> str:
    """A file of the controller's `.llamafleet/secrets/` beside the inventory (or
    $LLAMAFLEET_SECRETS), where the deploy of that inventory keeps what it generated."""
    from llamafleet.serving.secrets import secrets_location

    path = secrets_location(_inventory_option(config)) / name
    if not path.exists():
        pytest.fail(f"no {name} at {path}: has this inventory been deployed (with the same $LLAMAFLEET_SECRETS)?")
    return path.read_text().strip()


@pytest.fixture(scope="session")
def api_key(request) -> str:
    return _controller_secret(request.config, "api-key")


@pytest.fixture(scope="session")
def tunnel_public_key(request) -> str:
    """The tunnel key's public line ("ssh-ed25519 AAAA... llamafleet-tunnel") on the controller."""
    return _controller_secret(request.config, "tunnel_ed25519.pub")
