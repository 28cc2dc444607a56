"""Every llamafleet tunable, documented once, with its default.

pyinfra loads this file for every host; per-platform files (`termux.py`, `linux.py`) and
per-device-class files override single keys. Dicts and lists are *replaced*, not merged, by a
later group (pyinfra does not deep-merge), so overrides are kept as separate flat keys.
`llamafleet check` treats the names below as the complete set of known keys: a key in
inventory or group data that is neither here nor a pyinfra connector/global key is an error.
`None` means "decided by llamafleet from the device's facts or the plan".

Rendered from the declarations in llamafleet/settings/tunables.py (kind, default, allowed
values and this doc, one place per key): change a key there, then run
`python -m llamafleet.settings.all_py > group_data/all.py`.
"""

# --- Cluster roles and addresses ------------------------------------------------------------

# "master" runs llama-server (rank 0) and talks to the workers; "worker" runs ggml-rpc-server.
# Exactly one master per inventory.
llama_role = "worker"

# The address the other cluster members use to reach this host. Default: the host's
# `ssh_hostname`, else its inventory name.
cluster_address = None

# --- llama.cpp source (one ref for the whole cluster: RPC needs matching protocol versions) ---

# Git repository cloned shallowly on each device.
llama_cpp_repo = "https://github.com/ggml-org/llama.cpp"

# The ref (tag or commit) of llama_cpp_repo to build.
llama_cpp_ref = None

# Or: a source archive on the controller (.tar.gz), uploaded to offline devices. A
# llama-cpp-python sdist works too (its vendored vendor/llama.cpp is used).
llama_cpp_archive = None

# Where llamafleet keeps source, builds, models and logs on the device.
# Default: $HOME/llamafleet on Termux, /opt/llamafleet on Linux.
llamafleet_dir = None

# --- Build ----------------------------------------------------------------------------------

# Override the architecture detection chooses: an ARM march such as
# "armv8.2-a+dotprod+fp16" (passed as GGML_CPU_ARM_ARCH) or an x86-64 level ("x86-64-v3").
llama_cpu_arch = None

# Override the -mcpu tuning chosen from the big core ("cortex-a76"); "" disables -mcpu.
llama_cpu_mcpu = None

# Extra CMake arguments, appended after llamafleet's own (last one wins in CMake).
llama_cmake_args = []

# A YAML file on the controller (`~` expanded, relative to the directory you run from) with CPU
# table rows for this device class: `cores:` rows (a MIDR implementer/part llamafleet does not
# know: core name, -mtune name, little or big) and/or `tune:` rows (which GCC/clang version
# accepts a -mtune name). They replace built-in rows with the same key, add the others, and
# decide core names, thread count and tuning. The built-in table and its row format:
# llamafleet/cpu/table.yaml. `llamafleet check` reads the file and refuses a bad row.
llama_cpu_table = None

# Parallel compile jobs. Default: min(cores, available RAM in GiB / 1.5): phones OOM at -j8.
# On Termux never more than 4 (Android 12+ kills an app's processes beyond 32).
llama_build_jobs = None

# C compiler to build with ("clang", "gcc", a path). Default: clang on Termux, cc on Linux.
llama_compiler = None

# Devices with identical build inputs (flags, compiler and version, platform, arch, targets)
# form a class: compile on one member, copy the binaries to the others through the controller.
llama_build_once_per_class = True

# --- Packages -------------------------------------------------------------------------------

# Termux packages (real Termux names), installed with `pkg install -y`.
termux_packages = ["clang", "cmake", "ninja", "git", "ccache", "openssh", "termux-services", "termux-api"]

# Debian/Ubuntu packages on Linux hosts, installed with apt (package lists older than a day are
# refreshed first, only when something is missing). runit is added where the plan chose runit,
# and left out on a systemd host even when listed here.
apt_packages = ["build-essential", "cmake", "ninja-build", "git", "ccache"]

# More packages for one device class, added to the platform list above.
extra_packages = []

# --- RPC workers ----------------------------------------------------------------------------

# A new worker gets the lowest port from rpc_port_base up that no other worker holds (on a first
# deploy: rpc_port_base, +1, ... in inventory order). A worker keeps the port of its first
# deploy, recorded on it (<llamafleet_dir>/etc/rpc-port), while devices are added or removed;
# changing rpc_port_base gives its workers new ports from the new base.
rpc_port_base = 50052

# This worker's RPC port, instead of the one it keeps or gets from rpc_port_base. A port that
# another worker holds is refused, naming both.
rpc_port = None

# Address the worker's rpc-server binds. Default: its cluster address (or 127.0.0.1 when
# tunnelled). "0.0.0.0" only when set here explicitly: RPC has no authentication.
rpc_bind = None

# "direct" (master connects to cluster_address:port) or "tunnel" (the master keeps an SSH
# local-forward to a worker bound to 127.0.0.1). Default: tunnel for Termux workers, direct
# for Linux workers (which get firewall rules).
rpc_transport = None

# Allow a direct, non-loopback RPC bind on a host that cannot firewall (a phone without root).
rpc_allow_insecure = False

# Threads for rpc-server / llama-server. Default: the device's big cores.
rpc_threads = None

# On a big.LITTLE device (ARM), run a worker's rpc-server on its big cores only (`taskset -c`):
# the CPUs whose max clock (cpufreq) is above the device's lowest, among those its processes may
# use; its default thread count is then at most their number. Nothing is pinned where cpufreq
# is unreadable, every CPU has one clock, or no big core is allowed (an Android app held to the
# little cores). `llamafleet plan` shows the CPUs or why none.
rpc_pin_big_cores = True

# A device holds at most this fraction of its RAM in model tensors (the guides see crashes
# above ~75 %), minus rpc_overhead_mb.
rpc_ram_fraction = 0.7

# RAM in MiB (1024 × 1024 bytes, as every *_mb key) kept for the rpc-server process and the OS.
rpc_overhead_mb = 500

# RAM in MiB used by `llamafleet check`/plan instead of the detected MemTotal (offline planning;
# `free -m` shows MiB). With it on every host, `llamafleet check` refuses a model that cannot fit.
ram_mb = None

# rpc-server's local tensor cache (`-c`): a worker keeps the tensors it received under
# $LLAMA_CACHE (default ~/.cache/llama.cpp/rpc) and the master sends only hashes on the next
# load, so a restart loads in seconds instead of re-sending the weights over Wi-Fi. Costs
# disk space equal to the worker's share of the model. Default: on when the worker's link was
# measured (`llamafleet plan --measure`) under 100 Mbit/s, else off.
rpc_cache = None

# --- Model ----------------------------------------------------------------------------------

# The model: a URL each device downloads it from (model_sha256 required), or model_file.
model_url = None

# Or the model as a file on the controller, uploaded to each device.
model_file = None

# The model's sha256: required with model_url, and checked in both cases.
model_sha256 = None

# Model size in MiB (1024 × 1024 bytes; a 1.93 GB file is about 1840) for planning when only
# model_url is given (with model_file the file's own size is used). Values under 10 are refused
# as a size in GB: GGUF language models are tens of MiB or more.
model_size_mb = None

# File name on the device (under <llamafleet_dir>/models/). Default: the basename.
model_name = None

# Also put the model on the workers. Not needed for RPC (the master sends each worker its
# tensors); useful to run llama-server on a worker alone.
model_on_workers = False

# Hand-written tensor split, one proportion per RPC worker in rank order, which is port order
# as `llamafleet plan` shows it (must sum to 1). Default: from each device's usable RAM.
llama_tensor_split = None

# How the automatic tensor split is made: "speed" gives each device a share that minimises the
# time per token, fastest devices first, each within its RAM limit (needs `llamafleet plan
# --measure`); "ram" splits by usable RAM; "auto" is "speed" once every device is measured, else
# "ram". llama_tensor_split, when set, wins over both.
llama_split_by = "auto"

# The master's own CPU holds and computes the first layers (llama-server's -ngl below all)
# besides sending the rest to the workers. Default: on when the measured speeds say that is
# faster; off without measurements.
master_computes = None

# llama-server --load-mode (auto, none, mmap, mlock, mmap+mlock, dio). Default: chosen from the
# master's RAM: "mmap" when the model fits comfortably (lower peak RAM), "none" when it is tight
# (the seeds report page-fault thrash and instability of mmap on low-RAM phones).
llama_load_mode = None

# --- Master (llama-server) ------------------------------------------------------------------

# Address llama-server listens on. Default: the master's cluster address.
llama_server_host = None

# Port llama-server listens on.
llama_server_port = 8080

# Allow llama_server_host beyond the cluster (0.0.0.0, or another address than the master's
# own) where no firewall holds the port to api_allowed_sources: on a phone, or with
# firewall_enabled = False.
llama_server_allow_insecure = False

# Context size for llama-server.
llama_server_ctx = 2048

# The chat template for /v1/chat/completions. Default: the model's own (GGUF
# tokenizer.chat_template). A model without one gets ChatML from llama-server and answers chat
# clients with template tokens: name a template shipped in templates/chat/ ("gemma3") or a
# Jinja file on the controller; it is uploaded and passed as --chat-template-file.
llama_chat_template = None

# Sources (IPv4 addresses or CIDRs) allowed to reach llama-server's port besides the master
# itself. Add the controller's address here if you call the API from it (the lab does).
api_allowed_sources = []

# --- Linux host settings (skipped on Termux: they need root) --------------------------------

# Write /etc/sysctl.d/90-llamafleet.conf (keepalive, backlog, buffers) and apply on change.
sysctl_enabled = True

# Restrict RPC ports to the master and the API port to api_allowed_sources.
firewall_enabled = True

# "iptables", "nftables", "ufw" or "firewalld". Default: what the host has.
firewall_backend = None

# "termux-services", "systemd" or "runit". Default: what the host has.
service_manager = None

# The unprivileged system user every llamafleet process runs as on Linux: rpc-server,
# llama-server, the master's SSH tunnels and their svlogd loggers (llama.cpp's RPC has no
# authentication and has had remote-code-execution bugs). Its group has the same name. The deploy
# creates both (a system account: no login shell, no password, home /nonexistent) unless they
# exist; it never changes an existing account. It cannot listen below port 1024. "root" needs
# service_user_allow_root. Not used on Termux, where every process is the app's own user (the
# only one an app has).
service_user = "llamafleet"

# Allow service_user = "root" (`llamafleet check` still warns): whoever reaches a worker's RPC
# port, or exploits llama-server, then holds the whole machine.
service_user_allow_root = False

# --- Termux ---------------------------------------------------------------------------------

# Write ~/.termux/boot/ scripts (Termux:Boot) that take the wake lock and start services.
termux_boot = True

# Seconds the boot script waits for the network before starting the services anyway.
termux_boot_network_wait = 60
