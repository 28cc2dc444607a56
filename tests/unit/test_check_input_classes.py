"""`llamafleet check` by class of bad input: values that reach a device, the offline fit from
ram_mb, llama-server beyond the cluster without a firewall, and what pyinfra lets slide (group
data for no group, a group override replaced by a later group, a phone without its SSH port or
temp directory, one machine listed twice, a placeholder sha256). One test per class; each
expected line is written out from the rule it stands for.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from llamafleet.inventory_data import InventoryHost
from llamafleet.validate import validate_inventory

from check_hosts import CLUSTER, DEFAULTS, MASTER, SHA, TERMUX_TMP, check, linux, phone  # noqa: F401


# --- values that reach a device: a strict pattern each ---------------------------------------------

NOT_A_NAME = "is not a plain file name (letters, digits and . _ + -, not starting with . or -, no /): it must stay inside its directory"
NOT_URL = "is not an http:// or https:// URL"
PATH_CHARS = "may hold only letters, digits and . _ + - between single slashes"
CLIMBS = "climbs with . or ..: write the directory itself"
NOT_REF = "is not a git tag, branch or commit (letters, digits and . _ / + -, as git names refs)"
NOT_PACKAGE = "is not a package name (letters, digits and + . -, optionally =VERSION)"
NOT_CMAKE = ("is not -DNAME=VALUE, -DNAME:TYPE=VALUE or -UNAME with a VALUE of letters, digits, spaces "
             "and _ . , : ; = + / @ % ~ ^ -")
NOT_ARCH = ("is not an ARM -march value (e.g. 'armv8.2-a+dotprod+fp16'), an x86-64 level (x86-64, x86-64-v2, "
            "x86-64-v3, x86-64-v4) or 'native'")

BAD_VALUES = [
    ("model_name", "../x.gguf", NOT_A_NAME),
    ("model_name", "models/x.gguf", NOT_A_NAME),
    ("model_name", "..", NOT_A_NAME),
    ("model_name", "-x.gguf", NOT_A_NAME),
    ("model_name", "m $(reboot).gguf", NOT_A_NAME),
    ("llamafleet_dir", "llamafleet", "is not an absolute path (or ~/...)"),
    ("llamafleet_dir", "/opt/../etc", CLIMBS),
    ("llamafleet_dir", "~/../../system", CLIMBS),
    ("llamafleet_dir", "/opt/llama fleet", PATH_CHARS),
    ("llamafleet_dir", "/opt//llamafleet", PATH_CHARS),
    ("llamafleet_dir", "/opt/$HOME", PATH_CHARS),
    ("llamafleet_dir", "/", "is the root directory"),
    ("_temp_dir", "~/tmp", "is not an absolute path"),
    ("llama_cpp_ref", "$(reboot)", NOT_REF),
    ("llama_cpp_ref", "-upload-pack=x", NOT_REF),
    ("llama_cpp_ref", "b6500..master", NOT_REF),
    ("llama_cpp_ref", "tags/b6500.lock", NOT_REF),
    ("llama_cpp_repo", "git@github.com:ggml-org/llama.cpp", NOT_URL),
    ("llama_cpp_repo", "file:///srv/llama.cpp", NOT_URL),
    ("model_url", "ftp://example.invalid/m.gguf", NOT_URL),
    ("model_url", "https://example.invalid/m.gguf?$(reboot)", "holds characters a URL does not need (spaces, quotes, $, `, \\)"),
    ("model_url", "https://exa mple.invalid/m.gguf", "holds characters a URL does not need (spaces, quotes, $, `, \\)"),
    ("model_url", "https://-bad-.invalid/m.gguf", "names no valid host"),
    ("model_url", "https://example.invalid:99999/m.gguf", "has a port that is not a number in 1..65535"),
    ("llama_cpu_arch", "armv8.2-a;reboot", NOT_ARCH),
    ("llama_cpu_arch", "", NOT_ARCH),
    ("llama_cpu_mcpu", "cortex a76", "is not a core name such as 'cortex-a76' (or '' for no tuning)"),
    ("llama_compiler", "bin/gcc", "is not an absolute path (a compiler given by path)"),
    ("llama_compiler", "gcc;reboot", "is not a compiler name such as 'clang' or 'gcc-12', nor an absolute path"),
    ("termux_packages", ["clang", "git; reboot"], NOT_PACKAGE),
    ("apt_packages", ["-oAPT::Get::AllowUnauthenticated=1"], NOT_PACKAGE),
    ("extra_packages", ["vim nano"], NOT_PACKAGE),
    ("llama_cmake_args", ["GGML_RPC=ON"], NOT_CMAKE),
    ("llama_cmake_args", ["-DCMAKE_C_FLAGS=$(reboot)"], NOT_CMAKE),
    ("llama_cmake_args", ["-DX=`id`"], NOT_CMAKE),
]


@pytest.mark.parametrize("key, value, message", BAD_VALUES, ids=[f"{key}={value}" for key, value, _ in BAD_VALUES])
def test_values_that_reach_a_device_must_match_their_pattern(key, value, message):
    bad = value[-1] if isinstance(value, list) else value
    assert check(MASTER, linux("board", "198.18.0.31", **{key: value})) == [f"board: {key}: {bad!r} {message}"]


GOOD_VALUES = [
    ("model_name", "gemma-3-270m-it-Q8_0.gguf"),
    ("llamafleet_dir", "/opt/llamafleet"),
    ("llamafleet_dir", "~"),
    ("llamafleet_dir", "~/.local/llamafleet"),
    ("_temp_dir", TERMUX_TMP),
    ("llama_cpp_ref", "b6500"),
    ("llama_cpp_ref", "4b6f5e0d6b3c0f4a2f0c9a1e3d5b7a9c1e3f5a7b"),
    ("llama_cpp_ref", "release/v1.2+rc1"),
    ("llama_cpp_repo", "https://github.com/ggml-org/llama.cpp"),
    ("model_url", "https://huggingface.co/Qwen/Q-GGUF/resolve/main/q4_k_m.gguf"),
    ("model_url", "http://[fe80::1]:8000/m.gguf"),
    ("llama_cpu_arch", "armv8.2-a+dotprod+fp16"),
    ("llama_cpu_arch", "x86-64-v3"),
    ("llama_cpu_arch", "native"),
    ("llama_cpu_mcpu", "cortex-a76"),
    ("llama_cpu_mcpu", ""),
    ("llama_compiler", "clang"),
    ("llama_compiler", "gcc-12"),
    ("llama_compiler", "/usr/bin/aarch64-linux-gnu-gcc"),
    ("termux_packages", ["clang", "libc++", "python3=3.11.2-1"]),
    ("llama_cmake_args", ["-DGGML_VULKAN=ON", "-DCMAKE_C_FLAGS=-O3 -g", "-DGGML_X:BOOL=OFF", "-UGGML_NATIVE",
                          "-DCMAKE_CUDA_ARCHITECTURES=75;86"]),
]


@pytest.mark.parametrize("key, value", GOOD_VALUES, ids=[f"{key}={value}" for key, value in GOOD_VALUES])
def test_plain_values_that_reach_a_device_pass(key, value):
    # On both hosts: the source and the model are one for the whole cluster.
    assert check(linux("box", "198.18.0.10", llama_role="master", **{key: value}),
                 linux("board", "198.18.0.31", **{key: value})) == []


def test_a_model_file_name_taken_from_the_url_must_be_plain_too():
    # Without model_name the device file is named after the URL's last part, query and all.
    url = "https://example.invalid/m.gguf?download=true"
    hosts = [linux("box", "198.18.0.10", llama_role="master", model_url=url), linux("board", "198.18.0.31", model_url=url)]
    expected = f"its file name 'm.gguf?download=true' {NOT_A_NAME}; set model_name"
    assert check(*hosts) == [f"box: model_url: {expected}", f"board: model_url: {expected}"]
    named = [InventoryHost(h.name, h.groups, {**h.data, "model_name": "m.gguf"}) for h in hosts]
    assert check(*named) == []


# --- the offline fit: ram_mb on every host ---------------------------------------------------------
# usable = ram_mb × rpc_ram_fraction (0.70) − rpc_overhead_mb (500): 2000 MB → 900 MB per worker.


def test_the_model_must_fit_the_ram_the_inventory_gives():
    def cluster(size_mb: float, phone_ram: float | None) -> list[str]:
        phone_data = {"ram_mb": phone_ram} if phone_ram else {}
        return check(linux("box", "198.18.0.10", llama_role="master", ram_mb=2000, model_size_mb=size_mb),
                     linux("board", "198.18.0.31", ram_mb=2000, model_size_mb=size_mb),
                     phone("phone1", "198.18.0.21", model_size_mb=size_mb, **phone_data))

    assert cluster(1801, 2000) == [
        "cluster: model_size_mb: 1801 MB does not fit the workers' usable RAM (1800 MB in total); use a model "
        "or quantisation of at most 1800 MB (now 1801 MB; e.g. Q4_K_M is about 57% of Q8_0), or add devices"]
    assert cluster(1800, 2000) == []
    # One host without ram_mb: its RAM comes from the device, so the fit waits for `plan`.
    assert cluster(1801, None) == []


# --- llama-server beyond the cluster without a firewall --------------------------------------------

API_ADVICE = ("nothing holds its port to api_allowed_sources; leave llama_server_host unset (the cluster "
              "address), enable the firewall, or set llama_server_allow_insecure = True")
WORKER = linux("board", "198.18.0.31")


@pytest.mark.parametrize("master, expected", [
    (linux("box", "198.18.0.10", llama_role="master", llama_server_host="0.0.0.0", firewall_enabled=False),
     "every network with firewall_enabled = False"),
    (linux("box", "198.18.0.10", llama_role="master", llama_server_host="203.0.113.7", firewall_enabled=False),
     "203.0.113.7 with firewall_enabled = False"),
    (phone("box", "198.18.0.10", llama_role="master", llama_server_host="::"),
     "every network of a phone that cannot firewall"),
    (linux("box", "198.18.0.10", llama_role="master", llama_server_host="198.18.0.10", firewall_enabled=False), None),
    (linux("box", "198.18.0.10", llama_role="master", llama_server_host="127.0.0.1", firewall_enabled=False), None),
    (linux("box", "198.18.0.10", llama_role="master", llama_server_host="0.0.0.0"), None),
    (linux("box", "198.18.0.10", llama_role="master", llama_server_host="0.0.0.0", firewall_enabled=False,
           llama_server_allow_insecure=True), None),
    (phone("box", "198.18.0.10", llama_role="master"), None),
], ids=["wildcard-no-firewall", "other-address-no-firewall", "wildcard-phone", "own-address", "loopback",
        "wildcard-firewalled", "opted-in", "phone-default"])
def test_llama_server_beyond_the_cluster_needs_a_firewall_or_an_opt_in(master, expected):
    lines = [f"box: llama_server_host: llama-server would listen on {expected}: {API_ADVICE}"] if expected else []
    assert check(master, WORKER) == lines


# --- what pyinfra lets slide -----------------------------------------------------------------------

INVENTORY_DATA = f'llama_cpp_ref = "b6500"\nmodel_url = "https://example.invalid/m.gguf"\nmodel_sha256 = "{SHA}"\n'


def inventory(tmp_path: Path, name: str, text: str, **group_files: str) -> Path:
    """tmp_path/<name>.py with the cluster's data and these group_data/<group>.py files. One name
    per inventory: pyinfra keeps the code of a file it executed once by its path."""
    (tmp_path / "group_data").mkdir(exist_ok=True)
    (tmp_path / "group_data" / "all.py").write_text(INVENTORY_DATA)
    for group, content in group_files.items():
        (tmp_path / "group_data" / f"{group}.py").write_text(content)
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(text))
    return path


HOSTS = textwrap.dedent(f"""
    linux = [("box", {{"ssh_hostname": "198.18.0.10", "llama_role": "master"}})]
    termux = (["phone1", "phone2"], {{"ssh_port": 8022, "_temp_dir": "{TERMUX_TMP}"}})
""")


def test_group_data_for_a_group_no_host_is_in(tmp_path):
    path = inventory(tmp_path, "typo", 'pixel7 = ["phone1"]\n' + HOSTS, pixl7="rpc_threads = 4\n")
    assert [str(p) for p in validate_inventory(path)] == [
        "cluster: rpc_threads: set for group 'pixl7' (group_data/pixl7.py or the inventory), which no host "
        "belongs to: it applies to none; did you mean 'pixel7'?"]
    # Spelt right, it applies; the deploy's group_data/linux.py is no mistake in an inventory of phones.
    (tmp_path / "group_data" / "pixl7.py").rename(tmp_path / "group_data" / "pixel7.py")
    assert validate_inventory(path) == []
    (tmp_path / "phones").mkdir()  # a folder of its own: its group_data/ has no pixel7.py
    phones_only = inventory(tmp_path / "phones", "phones", f"""
        termux = ([("phone0", {{"llama_role": "master"}}), "phone1"], {{"ssh_port": 8022, "_temp_dir": "{TERMUX_TMP}"}})
    """)
    assert validate_inventory(phones_only) == []


def test_a_device_class_override_replaced_by_a_later_group(tmp_path):
    # pixel7 is meant to override termux's rpc_transport; declared before termux, it cannot.
    pixel7 = "rpc_transport = 'direct'\nrpc_allow_insecure = True\n"
    before = inventory(tmp_path, "before", 'pixel7 = ["phone1"]\n' + HOSTS, pixel7=pixel7)
    assert [str(p) for p in validate_inventory(before)] == [
        "phone1: rpc_transport: 'direct' from group 'pixel7' is replaced by 'tunnel' from group 'termux', which "
        "comes later in the inventory (pyinfra: the later group wins); declare 'pixel7' after 'termux', or set "
        "the key in host data"]
    after = inventory(tmp_path, "after", HOSTS + 'pixel7 = ["phone1"]\n', pixel7=pixel7)
    assert validate_inventory(after) == []


def test_the_deploy_sees_group_data_mistakes_too(tmp_path):
    # deploy.py validates the inventory pyinfra loaded, with the same group data rules.
    from pyinfra.api import State
    from pyinfra.context import ctx_state

    from llamafleet.inventory_data import make_pyinfra_inventory
    from llamafleet.validate import validate_pyinfra_inventory

    path = inventory(tmp_path, "deploy", 'pixel7 = ["phone1"]\n' + HOSTS, pixel7="rpc_transport = 'direct'\n",
                     pixl7="rpc_threads = 4\n")
    with ctx_state.use(State()):
        loaded = make_pyinfra_inventory(path)
    keys = [(p.host, p.key) for p in validate_pyinfra_inventory(loaded)]
    assert keys == [("cluster", "rpc_threads"), ("phone1", "rpc_transport")]


def test_a_phone_needs_its_ssh_port_and_temp_dir():
    bare = InventoryHost("phone1", ("termux",), {**DEFAULTS, **CLUSTER, "ssh_hostname": "198.18.0.21"})
    assert check(MASTER, bare) == [
        "phone1: ssh_port: not set: pyinfra would log in on port 22, where Termux's sshd cannot listen (no root); "
        "set the port it listens on (8022 unless started with -p)",
        "phone1: _temp_dir: not set: pyinfra would put its temporary files in /tmp, which Android does not let "
        "an app write; set it to Termux's $PREFIX/tmp, as inventory/example.py does"]
    assert check(MASTER, phone("phone1", "198.18.0.21", ssh_port=1023)) == [
        "phone1: ssh_port: port 1023 is below 1024: Termux's sshd cannot listen there (no root); it listens on "
        "8022 unless started with -p"]
    assert check(MASTER, phone("phone1", "198.18.0.21", ssh_port=1024)) == []
    assert check(MASTER, linux("board", "198.18.0.31")) == []  # Linux: pyinfra's defaults work


def test_one_machine_listed_twice():
    twice = "198.18.0.21 port 8022 is phone1 again: one machine listed twice would have its RAM counted twice; keep one entry per machine"
    assert check(MASTER, phone("phone1", "198.18.0.21"), phone("phone2", "198.18.0.21")) == [
        f"phone2: ssh_hostname: {twice}"]
    assert check(MASTER, phone("phone1", "198.18.0.21"), phone("phone2", "198.18.0.21.", ssh_port=8022)) == [
        f"phone2: ssh_hostname: {twice}"]  # a fully qualified spelling is the same address
    # Another sshd on the same address is another machine (a container, a chroot).
    assert check(MASTER, phone("phone1", "198.18.0.21"), phone("phone2", "198.18.0.21", ssh_port=8023)) == []


@pytest.mark.parametrize("sha, placeholder", [("0" * 64, True), ("F" * 64, True), ("a" * 64, True), (SHA, False)])
def test_a_placeholder_sha256_is_refused(sha, placeholder):
    hosts = [linux("box", "198.18.0.10", llama_role="master", model_sha256=sha), linux("board", "198.18.0.31", model_sha256=sha)]
    message = (f"{sha!r} is a placeholder (one hex digit repeated), not the model's sha256: put the file's real "
               "one here (`sha256sum FILE`, or the model's download page)")
    assert check(*hosts) == ([f"box: model_sha256: {message}", f"board: model_sha256: {message}"] if placeholder else [])
