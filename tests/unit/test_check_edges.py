"""`llamafleet check` at the edges of its rules: each expected line is written out from the rule
it stands for (Linux's unprivileged ports, the documented ranges and choices), not computed."""

from __future__ import annotations

import hashlib

import pytest

from llamafleet.inventory_data import InventoryHost

from check_hosts import CLUSTER, DEFAULTS, MASTER, check, linux, phone


# --- (a) Termux, and llamafleet's service user on Linux, cannot bind below 1024 ------------------
# Linux lets an unprivileged process bind ports from 1024 up (net.ipv4.ip_unprivileged_port_start
# defaults to 1024); a Termux app user has no root, and a Linux host runs its services as the
# unprivileged service_user unless the inventory opts into root. So 1023 is refused, 1024 fine.

# A Linux host whose services run as root, by the inventory's explicit choice.
AS_ROOT = {"service_user": "root", "service_user_allow_root": True}


def test_termux_worker_port_1023_is_refused_and_1024_is_fine():
    assert check(MASTER, phone("phone1", "198.18.0.21", rpc_port=1023)) == [
        "phone1: rpc_port: port 1023 is below 1024: Termux has no root to bind it"
    ]
    assert check(MASTER, phone("phone1", "198.18.0.21", rpc_port=1024)) == []


def test_termux_port_from_the_base_is_checked_at_its_rank():
    # board is rank 1 (port 1023 on Linux, its services run as root), phone1 rank 2 gets 1023 + 1 = 1024.
    board = linux("board", "198.18.0.31", rpc_port_base=1023, **AS_ROOT)
    assert check(MASTER, board, phone("phone1", "198.18.0.21", rpc_port_base=1023)) == []
    # phone1 first: rank 1 gets the base itself, 1023.
    assert check(MASTER, phone("phone1", "198.18.0.21", rpc_port_base=1023), board) == [
        "phone1: rpc_port_base: port 1023 is below 1024: Termux has no root to bind it"
    ]


def test_termux_master_api_port_1023_is_refused_and_1024_is_fine():
    worker = linux("board", "198.18.0.31")
    assert check(phone("phone1", "198.18.0.21", llama_role="master", llama_server_port=1023), worker) == [
        "phone1: llama_server_port: port 1023 is below 1024: Termux has no root to bind it"
    ]
    assert check(phone("phone1", "198.18.0.21", llama_role="master", llama_server_port=1024), worker) == []


def test_linux_hosts_may_use_low_ports_when_their_services_run_as_root():
    assert check(linux("box", "198.18.0.10", llama_role="master", llama_server_port=80, **AS_ROOT),
                 linux("board", "198.18.0.31", rpc_port=1023, **AS_ROOT)) == []
    assert check(MASTER, linux("board", "198.18.0.31", rpc_port=1023)) == [
        "board: rpc_port: port 1023 is below 1024: rpc-server runs as the unprivileged service_user 'llamafleet', "
        "which cannot bind it; use a port from 1024 (a reverse proxy can serve 80 or 443)"]
    assert check(MASTER, linux("board", "198.18.0.31", rpc_port=1024)) == []


# --- ranges: the documented bounds, each side of each ---------------------------------------------
# group_data/all.py and check's rule table: a fraction of RAM in (0, 0.95] (0.95 leaves the OS
# something; 0 holds nothing), counts of threads, jobs and context tokens from 1, sizes above 0,
# overheads and waits from 0, TCP ports 1..65535. An unbounded side has no upper limit.

RANGE_CASES = [
    ("rpc_ram_fraction", 0, "0 is out of range: must be in (0, 0.95]"),
    ("rpc_ram_fraction", 0.01, None),
    ("rpc_ram_fraction", 0.95, None),
    ("rpc_ram_fraction", 0.96, "0.96 is out of range: must be in (0, 0.95]"),
    ("rpc_overhead_mb", -1, "-1 is out of range: must be at least 0"),
    ("rpc_overhead_mb", 0, None),
    ("rpc_overhead_mb", 10**6, None),
    ("rpc_threads", 0, "0 is out of range: must be at least 1"),
    ("rpc_threads", 1, None),
    ("rpc_threads", 256, None),
    ("llama_build_jobs", 0, "0 is out of range: must be at least 1"),
    ("llama_build_jobs", 1, None),
    ("llama_build_jobs", 64, None),
    ("ram_mb", 0, "0 is out of range: must be more than 0"),
    ("ram_mb", 0.5, None),
    ("ram_mb", 10**6, None),
    ("model_size_mb", 0, "0 is out of range: must be more than 0"),
    ("model_size_mb", 10, None),  # 0 < 0.5 < 10 is in range, refused as GB: test_check_units.py
    ("model_size_mb", 10**6, None),
    ("llama_server_ctx", 0, "0 is out of range: must be at least 1"),
    ("llama_server_ctx", 1, None),
    ("llama_server_ctx", 131072, None),
    ("termux_boot_network_wait", -1, "-1 is out of range: must be at least 0"),
    ("termux_boot_network_wait", 0, None),
    ("termux_boot_network_wait", 3600, None),
    ("rpc_port", 0, "0 is out of range: must be in [1, 65535]"),
    ("rpc_port", 1, None),
    ("rpc_port", 65535, None),
    ("rpc_port", 65536, "65536 is out of range: must be in [1, 65535]"),
    ("rpc_port_base", 0, "0 is out of range: must be in [1, 65535]"),
    ("rpc_port_base", 1, None),
    ("rpc_port_base", 65535, None),
    ("rpc_port_base", 65536, "65536 is out of range: must be in [1, 65535]"),
    ("llama_server_port", 0, "0 is out of range: must be in [1, 65535]"),
    ("llama_server_port", 65535, None),
    ("llama_server_port", 65536, "65536 is out of range: must be in [1, 65535]"),
    ("ssh_port", 0, "0 is out of range: must be in [1, 65535]"),
    ("ssh_port", 65535, None),
    ("ssh_port", 65536, "65536 is out of range: must be in [1, 65535]"),
]


@pytest.mark.parametrize("key, value, message", RANGE_CASES,
                         ids=[f"{key}={value}" for key, value, _ in RANGE_CASES])
def test_each_range_at_its_bounds(key, value, message):
    # On the only worker, a Linux box: nothing else about these values is wrong (a port below
    # 1024 included: its services run as root).
    board = linux("board", "198.18.0.31", **{key: value}, **(AS_ROOT if key.startswith("rpc_port") else {}))
    expected = [f"board: {key}: {message}"] if message else []
    assert check(MASTER, board) == expected


# --- choices and types -----------------------------------------------------------------------------


@pytest.mark.parametrize("key, values", [
    ("llama_load_mode", ["auto", "none", "mmap", "mlock", "mmap+mlock", "dio"]),  # llama-server --load-mode
    ("firewall_backend", ["iptables", "nftables", "ufw", "firewalld"]),
    ("service_manager", ["systemd", "runit"]),  # on Linux
    ("rpc_transport", ["direct", "tunnel"]),
])
def test_every_documented_choice_is_accepted(key, values):
    for value in values:
        assert check(MASTER, linux("board", "198.18.0.31", **{key: value})) == [], value


def test_a_misspelt_role_is_named_with_the_choices():
    assert check(MASTER, linux("board", "198.18.0.31", llama_role="Worker")) == [
        "board: llama_role: 'Worker' is not one of master, worker; did you mean 'worker'?"
    ]


@pytest.mark.parametrize("host, manager, message", [
    (phone("phone1", "198.18.0.21", service_manager="termux-services"), "termux-services", None),
    (phone("phone1", "198.18.0.21", service_manager="runit"), "runit",
     "'runit' does not exist on a termux host; use termux-services"),
    (phone("phone1", "198.18.0.21", service_manager="systemd"), "systemd",
     "'systemd' does not exist on a termux host; use termux-services"),
    (linux("board", "198.18.0.31", service_manager="termux-services"), "termux-services",
     "'termux-services' does not exist on a linux host; use systemd or runit"),
], ids=["termux-services-on-termux", "runit-on-termux", "systemd-on-termux", "termux-services-on-linux"])
def test_service_managers_a_platform_can_have(host, manager, message):
    expected = [f"{host.name}: service_manager: {message}"] if message else []
    assert check(MASTER, host) == expected


@pytest.mark.parametrize("key, value, message", [
    ("ram_mb", "8000", "must be a number, not str '8000'"),
    ("extra_packages", "git", "must be a list of strings, not str 'git'"),
    ("extra_packages", ["git", 3], "must be a list of strings, not list ['git', 3]"),
    ("llama_tensor_split", "0.5,0.5", "must be a list of numbers, not str '0.5,0.5'"),
    ("ssh_paramiko_connect_kwargs", "timeout=5", "must be a dict, not str 'timeout=5'"),
    ("rpc_allow_insecure", 1, "must be True or False, not int 1"),
])
def test_values_of_the_wrong_type_are_named_with_the_type_wanted(key, value, message):
    assert check(MASTER, linux("board", "198.18.0.31", **{key: value})) == [f"board: {key}: {message}"]


def test_right_types_pass():
    board = linux("board", "198.18.0.31", ram_mb=4000, extra_packages=["git"],
                  ssh_paramiko_connect_kwargs={"timeout": 5}, rpc_allow_insecure=True)
    assert check(linux("box", "198.18.0.10", llama_role="master", llama_tensor_split=[1]), board) == []


# --- one source and one model for the whole cluster ------------------------------------------------


@pytest.mark.parametrize("key", ["llama_cpp_ref", "llama_cpp_archive", "model_url", "model_file", "model_sha256"])
def test_source_and_model_must_be_the_same_on_every_host(tmp_path, key):
    files = {name: tmp_path / name for name in ("a.tar.gz", "b.tar.gz", "a.gguf", "b.gguf")}
    for path in files.values():
        path.write_bytes(b"x")
    values = {
        "llama_cpp_ref": ("b6500", "b6501"),
        "llama_cpp_archive": (str(files["a.tar.gz"]), str(files["b.tar.gz"])),
        "model_url": ("https://example.invalid/a.gguf", "https://example.invalid/b.gguf"),
        "model_file": (str(files["a.gguf"]), str(files["b.gguf"])),
        "model_sha256": (hashlib.sha256(b"a").hexdigest(), hashlib.sha256(b"b").hexdigest()),
    }[key]
    base = dict(CLUSTER)
    if key == "llama_cpp_archive":
        base["llama_cpp_ref"] = None
    if key == "model_file":
        base["model_url"] = None
    box = linux("box", "198.18.0.10", llama_role="master", **{**base, key: values[0]})
    board = linux("board", "198.18.0.31", **{**base, key: values[1]})
    assert check(box, board) == [
        f"board: {key}: {values[1]!r} differs from {values[0]!r} on box: "
        "one cluster needs one llama.cpp source and one model"
    ]


# --- every rule's line, written out ----------------------------------------------------------------
# `llamafleet check` prints these lines to the user; each names the host, the key and what to do.

WORKER = linux("board", "198.18.0.31")
NO_SOURCE = {"llama_cpp_ref": None}
NO_MODEL = {"model_url": None, "model_sha256": None}
ADVICE = "keep the default: rpc_transport 'tunnel' with RPC bound to 127.0.0.1, or set rpc_allow_insecure = True"

RULE_CASES = {
    "no source": ([MASTER, linux("board", "198.18.0.31", **NO_SOURCE)],
                  ["board: llama_cpp_ref: no llama.cpp source: set llama_cpp_ref (a tag or commit) or llama_cpp_archive",
                   "board: llama_cpp_ref: None differs from 'b6500' on box: one cluster needs one llama.cpp source "
                   "and one model"]),
    "archive missing": ([MASTER, linux("board", "198.18.0.31", llama_cpp_ref=None, llama_cpp_archive="/nonexistent/l.tgz")],
                        ["board: llama_cpp_archive: /nonexistent/l.tgz: no such file on the controller",
                         "board: llama_cpp_ref: None differs from 'b6500' on box: one cluster needs one llama.cpp "
                         "source and one model",
                         "board: llama_cpp_archive: '/nonexistent/l.tgz' differs from None on box: one cluster needs "
                         "one llama.cpp source and one model"]),
    "no model": ([linux("box", "198.18.0.10", llama_role="master", **NO_MODEL), linux("board", "198.18.0.31", **NO_MODEL)],
                 ["box: model_url: no model: set model_url (+ model_sha256) or model_file",
                  "board: model_url: no model: set model_url (+ model_sha256) or model_file"]),
    "url and file": ([linux("box", "198.18.0.10", llama_role="master", model_file="/m.gguf"),
                      linux("board", "198.18.0.31", model_file="/m.gguf")],
                     ["box: model_file: both model_url and model_file are set: keep one",
                      "board: model_file: both model_url and model_file are set: keep one"]),
    "model file missing": ([linux("box", "198.18.0.10", llama_role="master", model_url=None, model_file="/nonexistent.gguf"),
                            linux("board", "198.18.0.31", model_url=None, model_file="/nonexistent.gguf")],
                           ["box: model_file: /nonexistent.gguf: no such file on the controller",
                            "board: model_file: /nonexistent.gguf: no such file on the controller"]),
    "url without sha": ([linux("box", "198.18.0.10", llama_role="master", model_sha256=None),
                         linux("board", "198.18.0.31", model_sha256=None)],
                        ["box: model_sha256: model_url without model_sha256: a download must be checked",
                         "board: model_sha256: model_url without model_sha256: a download must be checked"]),
    "bad sha": ([linux("box", "198.18.0.10", llama_role="master", model_sha256="abc"),
                 linux("board", "198.18.0.31", model_sha256="abc")],
                ["box: model_sha256: 'abc' is not a sha256 (64 hex digits)",
                 "board: model_sha256: 'abc' is not a sha256 (64 hex digits)"]),
    "no master": ([linux("box", "198.18.0.10"), linux("board", "198.18.0.31", llama_cpp_ref="b1")],
                  ['cluster: llama_role: no master: set llama_role = "master" on one host',
                   "board: llama_cpp_ref: 'b1' differs from 'b6500' on box: one cluster needs one llama.cpp source "
                   "and one model"]),
    "three masters": ([MASTER, linux("b", "198.18.0.32", llama_role="master"), linux("c", "198.18.0.33", llama_role="master"), WORKER],
                      ["b: llama_role: second master (box is master already): exactly one allowed",
                       "c: llama_role: second master (box is master already): exactly one allowed"]),
    "split": ([linux("box", "198.18.0.10", llama_role="master", llama_tensor_split=[-0.5, 1.0, 0.6]), WORKER],
              ["box: llama_tensor_split: 3 proportions for 1 workers: one per worker, in rank order",
               "box: llama_tensor_split: proportions cannot be negative",
               "box: llama_tensor_split: proportions sum to 1.1, must be 1"]),
    "split with a zero share": ([linux("box", "198.18.0.10", llama_role="master", llama_tensor_split=[0, 1]), WORKER,
                                 linux("board2", "198.18.0.32")], []),
    "addresses": ([linux("box", "198.18.0.10", llama_role="master", llama_server_host="my box",
                         api_allowed_sources=["198.18.0.0/24", "198.18.0.7/24", "10.0.0.300"]),
                   linux("board", "198.18.0.31", cluster_address="bad_name!", rpc_bind="[::1")],
                  ["box: llama_server_host: 'my box' is not an IP address or host name",
                   "box: api_allowed_sources: '10.0.0.300' is not an address or CIDR",
                   "board: cluster_address: 'bad_name!' is not an IP address or host name",
                   "board: rpc_bind: '[::1' is not an IP address or host name"]),
    "phone bound everywhere": ([MASTER, phone("phone1", "198.18.0.21", rpc_bind="0.0.0.0")],
                               [f"phone1: rpc_bind: RPC (no authentication) would listen on every network of a phone "
                                f"that cannot firewall; {ADVICE}"]),
    "phone direct": ([MASTER, phone("phone1", "198.18.0.21", rpc_transport="direct")],
                     [f"phone1: rpc_transport: RPC (no authentication) would listen on 198.18.0.21 of a phone that "
                      f"cannot firewall; {ADVICE}"]),
    "phone direct allowed": ([MASTER, phone("phone1", "198.18.0.21", rpc_transport="direct", rpc_allow_insecure=True)], []),
    "wildcard without firewall": ([MASTER, linux("board", "198.18.0.31", rpc_bind="0.0.0.0", firewall_enabled=False)],
                                  ["board: rpc_bind: 0.0.0.0 with firewall_enabled = False exposes RPC (no authentication) "
                                   "to every network; enable the firewall, bind the cluster address or set "
                                   "rpc_allow_insecure = True"]),
    "direct loopback": ([MASTER, linux("board", "198.18.0.31", rpc_bind="127.0.0.1")],
                        ["board: rpc_bind: direct transport with loopback bind 127.0.0.1: box cannot reach it; bind the "
                         "cluster address or use 'tunnel'"]),
    "two unknown keys": ([MASTER, linux("board", "198.18.0.31", rpc_prot=1, rpc_treads=2)],
                         ["board: rpc_prot: unknown key; did you mean 'rpc_port'?",
                          "board: rpc_treads: unknown key; did you mean 'rpc_threads'?"]),
    "sshd on another port": ([MASTER, linux("board", "198.18.0.31", ssh_port=2222, rpc_port=2222)],
                             ["board: rpc_port: board's RPC server on 198.18.0.31:2222 clashes with board's sshd "
                              "(same machine 198.18.0.31)"]),
    "api on the sshd port": ([linux("box", "198.18.0.10", llama_role="master", llama_server_port=22, **AS_ROOT),
                              WORKER],
                             ["box: llama_server_port: box's llama-server on 198.18.0.10:22 clashes with box's sshd "
                              "(same machine 198.18.0.10)"]),
    "local master has no sshd": ([linux("@local", "198.18.0.10", llama_role="master", llama_server_port=22, **AS_ROOT),
                                  WORKER], []),
    "api on loopback beside a worker": ([linux("box", "198.18.0.10", llama_role="master", llama_server_host="127.0.0.1"),
                                         linux("board", "198.18.0.31", cluster_address="198.18.0.10", rpc_port=8080)], []),
    "wildcard worker beside the api": ([MASTER, linux("board", "198.18.0.31", cluster_address="198.18.0.10",
                                                      rpc_bind="0.0.0.0", rpc_port=8080)],
                                       ["board: rpc_port: board's RPC server on 198.18.0.10:8080 clashes with box's "
                                        "llama-server (same machine 198.18.0.10)"]),
    "tunnel end beside a loopback api": ([linux("box", "198.18.0.10", llama_role="master", llama_server_host="127.0.0.1"),
                                          phone("phone1", "198.18.0.21", rpc_port=8080)],
                                         ["phone1: rpc_port: box's tunnel to phone1 on 127.0.0.1:8080 clashes with box's "
                                          "llama-server (same machine 198.18.0.10)"]),
    "every worker is checked": ([MASTER, linux("board", "198.18.0.31", rpc_port_base=65535),
                                 phone("phone1", "198.18.0.21", rpc_port_base=65535),
                                 phone("phone2", "198.18.0.22", rpc_port=80)],
                                ["phone1: rpc_port_base: no free port from 65535 to 65535: the other workers "
                                 "hold them; lower rpc_port_base or set rpc_port",
                                 "phone2: rpc_port: port 80 is below 1024: Termux has no root to bind it"]),
}


@pytest.mark.parametrize("case", sorted(RULE_CASES))
def test_each_rule_prints_its_line(case):
    hosts, expected = RULE_CASES[case]
    assert check(*hosts) == expected


def test_a_value_from_a_group_says_which_group():
    def with_origin(origin: str) -> InventoryHost:
        return InventoryHost("board", ("linux",), {**DEFAULTS, **CLUSTER, "ssh_hostname": "198.18.0.31",
                                                    "rpc_threads": 0}, {"rpc_threads": origin})

    assert check(MASTER, with_origin("group 'boards'")) == [
        "board: rpc_threads: 0 is out of range: must be at least 1 (set in group 'boards')"]
    assert check(MASTER, with_origin("host data")) == ["board: rpc_threads: 0 is out of range: must be at least 1"]
    assert check(MASTER, with_origin("unknown")) == ["board: rpc_threads: 0 is out of range: must be at least 1"]


# --- addresses and host names (RFC 1123: labels of 1-63 letters, digits, hyphens, not at either end;
# at most 253 characters in all). An IPv6 address may come in brackets, both of them. -------------

NAME_253 = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])


@pytest.mark.parametrize("value, ok", [
    ("[fe80::1]", True),
    ("[::ffff:198.18.0.1]", True),  # an IPv4-mapped IPv6 address: its first and last characters count
    ("[::1", False),  # a bracket left open is no address (rpc-server would refuse it)
    ("::1]", False),
    ("pixel-X", True),
    ("box.lan.", True),  # a fully qualified name may end in a dot
    (NAME_253, True),
    (NAME_253 + "d", False),
    ("a-.lan", False),
], ids=["ipv6-bracketed", "ipv4-mapped-bracketed", "open-bracket", "close-bracket", "upper-case-end", "trailing-dot", "253-chars",
        "254-chars", "label-ends-with-hyphen"])
def test_addresses_and_host_names(value, ok):
    from llamafleet.validate import is_ip_or_hostname

    assert is_ip_or_hostname(value) is ok


@pytest.mark.parametrize("data, expected", [
    ({"llama_cpp_ref": None, "llama_cpp_archive": 5}, "board: llama_cpp_archive: must be a string, not int 5"),
    ({"model_url": 5, "model_sha256": None}, "board: model_url: must be a string, not int 5"),
    ({"model_url": None, "model_sha256": None, "model_file": 5}, "board: model_file: must be a string, not int 5"),
])
def test_a_malformed_source_or_model_is_one_line_not_two(data, expected):
    # Not also "no llama.cpp source" / "no model", nor a cluster-wide difference: the value is bad.
    box = linux("box", "198.18.0.10", llama_role="master", **data)
    assert check(box, linux("board", "198.18.0.31", **data)) == [expected.replace("board", "box", 1), expected]


def test_a_connector_whose_annotations_do_not_resolve_still_names_its_keys(monkeypatch):
    """A third-party pyinfra connector typed with a name pyinfra cannot resolve: its keys are
    known (no "unknown key"), with any type."""
    import pyinfra.api.connectors as connectors

    from llamafleet.validate import pyinfra_keys

    class Data:
        __annotations__ = {"phone_serial": "NoSuchType"}

    class Connector:
        data_cls = Data
        data_meta = {"phone_serial": None}

    real = connectors.get_all_connectors()
    monkeypatch.setattr(connectors, "get_all_connectors", lambda: {**real, "adbish": Connector})
    keys = pyinfra_keys()
    assert "phone_serial" in keys and keys["phone_serial"] is None
    assert keys["ssh_port"] is not None and keys["ssh_port"].accepts(22)


# --- the one line of a clean inventory, and an inventory that cannot be read ----------------------


def test_the_summary_line_names_hosts_master_workers_model_and_source():
    from llamafleet.validate import summary

    box = linux("box", "198.18.0.10", llama_role="master")
    assert summary([box, WORKER]) == (
        "ok: 2 hosts, master box, workers board, model m.gguf, ref b6500")
    from_files = linux("box", "198.18.0.10", llama_role="master", llama_cpp_ref=None,
                       llama_cpp_archive="/src/llama.tar.gz", model_url=None, model_file="/models/gemma.gguf")
    assert summary([from_files, WORKER]) == (
        "ok: 2 hosts, master box, workers board, model gemma.gguf, ref llama.tar.gz")
    assert summary([WORKER]) == "ok: 1 hosts, master ?, workers board, model ?, ref ?"


def test_an_inventory_that_cannot_be_loaded_is_one_cluster_line(tmp_path):
    from llamafleet.validate import validate_inventory

    lines = [str(problem) for problem in validate_inventory(tmp_path / "missing.py")]
    assert len(lines) == 1 and lines[0].startswith("cluster: inventory: ") and "missing.py" in lines[0]
