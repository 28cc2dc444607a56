"""Every llamafleet tunable, declared once: kind, default, allowed values and its doc.

group_data/all.py is rendered from this list (`python -m llamafleet.settings.all_py`), and a unit
test fails when the two differ. Adding a tunable is adding one `Setting` here, then rendering.
"""

from __future__ import annotations

from llamafleet.settings import patterns as p
from llamafleet.settings.declare import Setting, declare
from llamafleet.settings.kinds import (
    AT_LEAST_0,
    AT_LEAST_1,
    BOOL,
    INT,
    LIST_NUMBER,
    LIST_STR,
    MORE_THAN_0,
    NUMBER,
    STR,
    TCP_PORT,
    Range,
)

SETTINGS = declare(
    "Cluster roles and addresses",
    Setting("llama_role", STR, "worker", choices=("master", "worker"), doc="""
"master" runs llama-server (rank 0) and talks to the workers; "worker" runs ggml-rpc-server.
Exactly one master per inventory."""),
    Setting("cluster_address", STR, pattern=p.address_problem, doc="""
The address the other cluster members use to reach this host. Default: the host's
`ssh_hostname`, else its inventory name."""),

    "llama.cpp source (one ref for the whole cluster: RPC needs matching protocol versions)",
    Setting("llama_cpp_repo", STR, "https://github.com/ggml-org/llama.cpp", pattern=p.http_url_problem, doc="""
Git repository cloned shallowly on each device."""),
    Setting("llama_cpp_ref", STR, pattern=p.git_ref_problem, doc="""
The ref (tag or commit) of llama_cpp_repo to build."""),
    Setting("llama_cpp_archive", STR, doc="""
Or: a source archive on the controller (.tar.gz), uploaded to offline devices. A
llama-cpp-python sdist works too (its vendored vendor/llama.cpp is used)."""),
    Setting("llamafleet_dir", STR, pattern=p.home_path_problem, doc="""
Where llamafleet keeps source, builds, models and logs on the device.
Default: $HOME/llamafleet on Termux, /opt/llamafleet on Linux."""),

    "Build",
    Setting("llama_cpu_arch", STR, pattern=p.cpu_arch_problem, doc="""
Override the architecture detection chooses: an ARM march such as
"armv8.2-a+dotprod+fp16" (passed as GGML_CPU_ARM_ARCH) or an x86-64 level ("x86-64-v3")."""),
    Setting("llama_cpu_mcpu", STR, pattern=p.cpu_tune_problem, doc="""
Override the -mcpu tuning chosen from the big core ("cortex-a76"); "" disables -mcpu."""),
    Setting("llama_cmake_args", LIST_STR, [], pattern=p.cmake_arg_problem, doc="""
Extra CMake arguments, appended after llamafleet's own (last one wins in CMake)."""),
    Setting("llama_cpu_table", STR, doc="""
A YAML file on the controller (`~` expanded, relative to the directory you run from) with CPU
table rows for this device class: `cores:` rows (a MIDR implementer/part llamafleet does not
know: core name, -mtune name, little or big) and/or `tune:` rows (which GCC/clang version
accepts a -mtune name). They replace built-in rows with the same key, add the others, and
decide core names, thread count and tuning. The built-in table and its row format:
llamafleet/cpu/table.yaml. `llamafleet check` reads the file and refuses a bad row."""),
    Setting("llama_build_jobs", INT, range=AT_LEAST_1, doc="""
Parallel compile jobs. Default: min(cores, available RAM in GiB / 1.5): phones OOM at -j8.
On Termux never more than 4 (Android 12+ kills an app's processes beyond 32)."""),
    Setting("llama_compiler", STR, pattern=p.compiler_problem, doc="""
C compiler to build with ("clang", "gcc", a path). Default: clang on Termux, cc on Linux."""),
    Setting("llama_build_once_per_class", BOOL, True, doc="""
Devices with identical build inputs (flags, compiler and version, platform, arch, targets)
form a class: compile on one member, copy the binaries to the others through the controller."""),

    "Packages",
    Setting("termux_packages", LIST_STR, ["clang", "cmake", "ninja", "git", "ccache", "openssh", "termux-services",
                                          "termux-api"], pattern=p.package_problem, doc="""
Termux packages (real Termux names), installed with `pkg install -y`."""),
    Setting("apt_packages", LIST_STR, ["build-essential", "cmake", "ninja-build", "git", "ccache"],
            pattern=p.package_problem, doc="""
Debian/Ubuntu packages on Linux hosts, installed with apt (package lists older than a day are
refreshed first, only when something is missing). runit is added where the plan chose runit,
and left out on a systemd host even when listed here."""),
    Setting("extra_packages", LIST_STR, [], pattern=p.package_problem, doc="""
More packages for one device class, added to the platform list above."""),

    "RPC workers",
    Setting("rpc_port_base", INT, 50052, range=TCP_PORT, doc="""
A new worker gets the lowest port from rpc_port_base up that no other worker holds (on a first
deploy: rpc_port_base, +1, ... in inventory order). A worker keeps the port of its first
deploy, recorded on it (<llamafleet_dir>/etc/rpc-port), while devices are added or removed;
changing rpc_port_base gives its workers new ports from the new base."""),
    Setting("rpc_port", INT, range=TCP_PORT, doc="""
This worker's RPC port, instead of the one it keeps or gets from rpc_port_base. A port that
another worker holds is refused, naming both."""),
    Setting("rpc_bind", STR, pattern=p.address_problem, doc="""
Address the worker's rpc-server binds. Default: its cluster address (or 127.0.0.1 when
tunnelled). "0.0.0.0" only when set here explicitly: RPC has no authentication."""),
    Setting("rpc_transport", STR, choices=("direct", "tunnel"), doc="""
"direct" (master connects to cluster_address:port) or "tunnel" (the master keeps an SSH
local-forward to a worker bound to 127.0.0.1). Default: tunnel for Termux workers, direct
for Linux workers (which get firewall rules)."""),
    Setting("rpc_allow_insecure", BOOL, False, doc="""
Allow a direct, non-loopback RPC bind on a host that cannot firewall (a phone without root)."""),
    Setting("rpc_threads", INT, range=AT_LEAST_1, doc="""
Threads for rpc-server / llama-server. Default: the device's big cores."""),
    Setting("rpc_pin_big_cores", BOOL, True, doc="""
On a big.LITTLE device (ARM), run a worker's rpc-server on its big cores only (`taskset -c`):
the CPUs whose max clock (cpufreq) is above the device's lowest, among those its processes may
use; its default thread count is then at most their number. Nothing is pinned where cpufreq
is unreadable, every CPU has one clock, or no big core is allowed (an Android app held to the
little cores). `llamafleet plan` shows the CPUs or why none."""),
    Setting("rpc_ram_fraction", NUMBER, 0.70, range=Range(0, 0.95, low_inclusive=False), doc="""
A device holds at most this fraction of its RAM in model tensors (the guides see crashes
above ~75 %), minus rpc_overhead_mb."""),
    Setting("rpc_overhead_mb", NUMBER, 500, range=AT_LEAST_0, doc="""
RAM in MiB (1024 × 1024 bytes, as every *_mb key) kept for the rpc-server process and the OS."""),
    Setting("ram_mb", NUMBER, range=MORE_THAN_0, doc="""
RAM in MiB used by `llamafleet check`/plan instead of the detected MemTotal (offline planning;
`free -m` shows MiB). With it on every host, `llamafleet check` refuses a model that cannot fit."""),
    Setting("rpc_cache", BOOL, doc="""
rpc-server's local tensor cache (`-c`): a worker keeps the tensors it received under
$LLAMA_CACHE (default ~/.cache/llama.cpp/rpc) and the master sends only hashes on the next
load, so a restart loads in seconds instead of re-sending the weights over Wi-Fi. Costs
disk space equal to the worker's share of the model. Default: on when the worker's link was
measured (`llamafleet plan --measure`) under 100 Mbit/s, else off."""),

    "Model",
    Setting("model_url", STR, pattern=p.http_url_problem, doc="""
The model: a URL each device downloads it from (model_sha256 required), or model_file."""),
    Setting("model_file", STR, doc="""
Or the model as a file on the controller, uploaded to each device."""),
    Setting("model_sha256", STR, pattern=p.sha256_problem, doc="""
The model's sha256: required with model_url, and checked in both cases."""),
    Setting("model_size_mb", NUMBER, range=MORE_THAN_0, doc="""
Model size in MiB (1024 × 1024 bytes; a 1.93 GB file is about 1840) for planning when only
model_url is given (with model_file the file's own size is used). Values under 10 are refused
as a size in GB: GGUF language models are tens of MiB or more."""),
    Setting("model_name", STR, pattern=p.file_name_problem, doc="""
File name on the device (under <llamafleet_dir>/models/). Default: the basename."""),
    Setting("model_on_workers", BOOL, False, doc="""
Also put the model on the workers. Not needed for RPC (the master sends each worker its
tensors); useful to run llama-server on a worker alone."""),
    Setting("llama_tensor_split", LIST_NUMBER, doc="""
Hand-written tensor split, one proportion per RPC worker in rank order, which is port order
as `llamafleet plan` shows it (must sum to 1). Default: from each device's usable RAM."""),
    Setting("llama_split_by", STR, "auto", choices=("auto", "speed", "ram"), doc="""
How the automatic tensor split is made: "speed" gives each device a share that minimises the
time per token, fastest devices first, each within its RAM limit (needs `llamafleet plan
--measure`); "ram" splits by usable RAM; "auto" is "speed" once every device is measured, else
"ram". llama_tensor_split, when set, wins over both."""),
    Setting("master_computes", BOOL, doc="""
The master's own CPU holds and computes the first layers (llama-server's -ngl below all)
besides sending the rest to the workers. Default: on when the measured speeds say that is
faster; off without measurements."""),
    Setting("llama_load_mode", STR, choices=("auto", "none", "mmap", "mlock", "mmap+mlock", "dio"), doc="""
llama-server --load-mode (auto, none, mmap, mlock, mmap+mlock, dio). Default: chosen from the
master's RAM: "mmap" when the model fits comfortably (lower peak RAM), "none" when it is tight
(the seeds report page-fault thrash and instability of mmap on low-RAM phones)."""),

    "Master (llama-server)",
    Setting("llama_server_host", STR, pattern=p.address_problem, doc="""
Address llama-server listens on. Default: the master's cluster address."""),
    Setting("llama_server_port", INT, 8080, range=TCP_PORT, doc="""
Port llama-server listens on."""),
    Setting("llama_server_allow_insecure", BOOL, False, doc="""
Allow llama_server_host beyond the cluster (0.0.0.0, or another address than the master's
own) where no firewall holds the port to api_allowed_sources: on a phone, or with
firewall_enabled = False."""),
    Setting("llama_server_ctx", INT, 2048, range=AT_LEAST_1, doc="""
Context size for llama-server."""),
    Setting("llama_chat_template", STR, doc="""
The chat template for /v1/chat/completions. Default: the model's own (GGUF
tokenizer.chat_template). A model without one gets ChatML from llama-server and answers chat
clients with template tokens: name a template shipped in templates/chat/ ("gemma3") or a
Jinja file on the controller; it is uploaded and passed as --chat-template-file."""),
    Setting("api_allowed_sources", LIST_STR, [], pattern=p.network_problem, doc="""
Sources (IPv4 addresses or CIDRs) allowed to reach llama-server's port besides the master
itself. Add the controller's address here if you call the API from it (the lab does)."""),

    "Linux host settings (skipped on Termux: they need root)",
    Setting("sysctl_enabled", BOOL, True, doc="""
Write /etc/sysctl.d/90-llamafleet.conf (keepalive, backlog, buffers) and apply on change."""),
    Setting("firewall_enabled", BOOL, True, doc="""
Restrict RPC ports to the master and the API port to api_allowed_sources."""),
    Setting("firewall_backend", STR, choices=("iptables", "nftables", "ufw", "firewalld"), doc="""
"iptables", "nftables", "ufw" or "firewalld". Default: what the host has."""),
    Setting("service_manager", STR, choices=("termux-services", "systemd", "runit"), doc="""
"termux-services", "systemd" or "runit". Default: what the host has."""),
    Setting("service_user", STR, "llamafleet", pattern=p.user_name_problem, doc="""
The unprivileged system user every llamafleet process runs as on Linux: rpc-server,
llama-server, the master's SSH tunnels and their svlogd loggers (llama.cpp's RPC has no
authentication and has had remote-code-execution bugs). Its group has the same name. The deploy
creates both (a system account: no login shell, no password, home /nonexistent) unless they
exist; it never changes an existing account. It cannot listen below port 1024. "root" needs
service_user_allow_root. Not used on Termux, where every process is the app's own user (the
only one an app has)."""),
    Setting("service_user_allow_root", BOOL, False, doc="""
Allow service_user = "root" (`llamafleet check` still warns): whoever reaches a worker's RPC
port, or exploits llama-server, then holds the whole machine."""),

    "Termux",
    Setting("termux_boot", BOOL, True, doc="""
Write ~/.termux/boot/ scripts (Termux:Boot) that take the wake lock and start services."""),
    Setting("termux_boot_network_wait", INT, 60, range=AT_LEAST_0, doc="""
Seconds the boot script waits for the network before starting the services anyway."""),

    # pyinfra's own keys that llamafleet reads or holds to more than pyinfra does (not in all.py).
    "pyinfra",
    Setting("ssh_hostname", STR, owner="pyinfra"),
    Setting("ssh_user", STR, owner="pyinfra"),
    Setting("ssh_port", INT, range=TCP_PORT, owner="pyinfra"),
    Setting("_temp_dir", STR, pattern=p.absolute_path_problem, owner="pyinfra"),
)

BY_NAME = {setting.name: setting for setting in SETTINGS}
