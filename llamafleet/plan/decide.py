"""Each per-host decision of the plan, one function each, from the host's typed settings and
facts: the defaults group_data/all.py documents as "decided by llamafleet". A worker's port is
llamafleet.plan.ports' (it reads what earlier deploys recorded on the devices).

`make_plan` calls them and writes what they decide into the plan; `llamafleet check` calls the
same ones on data alone (no facts), so what it refuses is what the deploy would do.
"""

from __future__ import annotations

from typing import Any, Mapping

from llamafleet.cpu.affinity import big_core_pin, parse_cpu_list
from llamafleet.layout import LayoutError, model_file_name, paths_for, resolve_base
from llamafleet.operations.buildinputs import RPC_BINARY, SERVER_BINARY
from llamafleet.plan.addresses import cluster_address_of, host_port, is_wildcard

# A 32-bit process (armv7l) has about 3 GiB of user address space (the kernel keeps the rest):
# it cannot map or hold more model than that, whatever the RAM.
ARMV7_ADDRESS_LIMIT_MB = 3072


def platform_of(host) -> str:
    """"termux" or "linux": the DevicePlatform fact, else membership of the `termux` group."""
    platform = (host.facts.get("DevicePlatform") or {}).get("platform")
    if platform:
        return platform
    return "termux" if "termux" in host.groups else "linux"


def effective_transport(settings, platform: str) -> str:
    """rpc_transport, else tunnel for Termux (no firewall possible) and direct for Linux."""
    return settings.rpc_transport or ("tunnel" if platform == "termux" else "direct")


def effective_bind(settings, transport: str, cluster_address: str) -> str:
    """rpc_bind, else 127.0.0.1 behind a tunnel, else the cluster address (never a wildcard)."""
    if settings.rpc_bind:
        return settings.rpc_bind
    return "127.0.0.1" if transport == "tunnel" else cluster_address


def connect_of(transport: str, bind: str, cluster_address: str, port: int) -> str:
    """How llama-server's --rpc reaches a worker."""
    if transport == "tunnel":
        # The master keeps an SSH local forward from its own loopback, on the same port
        # number as the worker's: one number per worker, easy to recognise in `ss -lt`.
        return host_port("127.0.0.1", port)
    return host_port(cluster_address if is_wildcard(bind) else bind, port)


def threads_of(settings, cpu: Mapping[str, Any], pin: str | None = None) -> int:
    """rpc_threads, else the big cores from the CpuProfile fact but no more than the CPUs the
    device's processes may use (usable_cpus, `nproc`: an Android cpuset or a container narrows
    it) nor than the CPUs a worker is pinned to (`pin`, cpu_pin_of); never less than 1. More
    threads than CPUs only take turns, and ggml's threads wait for each other at every step: on
    the lab's ARM phone (2 CPUs), 4 threads gave 0.4 tokens/s, 2 gave 2.7."""
    if settings.rpc_threads:
        return max(1, int(settings.rpc_threads))
    threads = int(cpu.get("threads") or cpu.get("big_cores") or 1)
    usable = cpu.get("usable_cpus")
    if usable:
        threads = min(threads, int(usable))
    if pin:
        threads = min(threads, len(parse_cpu_list(pin)))
    return max(1, threads)


# Where clocks tell big cores from LITTLE ones: on ARM each cluster has its cpufreq policy. On
# x86 the max clock differs per core (Intel's and AMD's preferred cores) and hybrid P-cores
# come with SMT siblings: the lowest clock is not a LITTLE cluster there.
PIN_ARCHES = ("aarch64", "armv7l", "armv6l")


def cpu_pin_of(settings, cpu: Mapping[str, Any], role: str) -> tuple[str | None, str | None]:
    """(the CPUs a worker's rpc-server is pinned to, "4-7", None), or (None, why not in a few
    words; None for the master, which is never pinned): its big cores among the CPUs the
    device lets its processes use (llamafleet.cpu.affinity.big_core_pin), unless
    rpc_pin_big_cores is off. ggml-rpc-server has no option of its own for it, and Android
    ignores llama.cpp's --cpu-mask: the service starts it through taskset."""
    if role != "worker":
        return None, None
    if not settings.rpc_pin_big_cores:
        return None, "rpc_pin_big_cores off"
    if not cpu:
        return None, "CPU unknown"
    if cpu.get("arch") not in PIN_ARCHES:
        return None, f"{cpu.get('arch') or 'arch unknown'}, not ARM"
    try:
        return big_core_pin(cpu.get("cpu_max_khz") or {}, cpu.get("allowed_cpus"))
    except (AttributeError, TypeError, ValueError):  # a hand-edited recorded fact: no pin, say so
        return None, "CpuProfile cpu_max_khz/allowed_cpus unreadable"


# The refusals' key among a host's facts (as `llamafleet plan --record` writes them too).
REFUSALS_FACT = "CpuRefusals"


def march_of(settings, cpu: Mapping[str, Any], refused: Mapping[str, Any] | None) -> str | None:
    """The architecture the build uses, as far as the plan can tell without the compiler:
    `llama_cpu_arch`, else the CPU's best rung, both without the ISA features the device
    refused (SIGILL in the build's self-test, recorded on it; llamafleet.cpu.refused)."""
    asked = settings.llama_cpu_arch or cpu.get("march")
    if not refused or not cpu.get("arch"):
        return asked
    from llamafleet.cpu.flags import build_flags  # lazy: the plan needs the flag table only here

    try:
        return build_flags(dict(cpu), None, llama_cpu_arch=settings.llama_cpu_arch, refused=refused).march
    except (KeyError, TypeError, ValueError):  # a partial recorded profile: show what was asked
        return asked


def usable_of(settings, ram_mb: float, arch: str | None) -> float:
    """What a device may hold in tensors: RAM × rpc_ram_fraction − rpc_overhead_mb, at most
    the 32-bit address space on armv7l."""
    usable = ram_mb * settings.rpc_ram_fraction - settings.rpc_overhead_mb
    if arch == "armv7l":
        usable = min(usable, ARMV7_ADDRESS_LIMIT_MB)
    return usable


def load_mode_of(settings, usable_mb: float, model_size_mb: float) -> str:
    """llama_load_mode, else mmap when the master could hold the whole model in its usable RAM
    (lower peak RAM); none when that is tight: the seeds report page-fault thrash with mmap on
    low-RAM phones."""
    return settings.llama_load_mode or ("mmap" if model_size_mb <= usable_mb else "none")


def service_manager_of(settings, platform: str, device: Mapping[str, Any]) -> str:
    """service_manager, else what the device has (DevicePlatform fact), else the platform's
    usual one (termux-services on a phone, runit on Linux)."""
    return settings.service_manager or device.get("service_manager") or (
        "termux-services" if platform == "termux" else "runit")


def service_account_of(settings, platform: str) -> tuple[str | None, str | None]:
    """(user, group) every llamafleet process of the host runs as: on Linux `service_user` and
    the group of the same name; (None, None) on Termux, where every process is the app's own
    user (an app has no other, and no root to switch with)."""
    if platform == "termux":
        return None, None
    return settings.service_user, settings.service_user


def binary_of(role: str) -> str:
    """The program a role's service runs, by its installed name in <base>/bin."""
    return SERVER_BINARY if role == "master" else RPC_BINARY


def base_of(name: str, settings, platform: str, device: Mapping[str, Any]) -> str | None:
    """Where llamafleet lives on the device (llamafleet.layout.resolve_base), or None when the
    device's home is needed and unknown (a plan made without facts; the deploy, which reads
    them, names host and key)."""
    try:
        return resolve_base(name, settings.llamafleet_dir, {"platform": platform, **device})
    except LayoutError:
        return None


def model_path_of(base: str | None, settings) -> str | None:
    """The model's path on the device: <base>/models/<model_name or the source's basename>."""
    name = model_file_name(settings)
    return f"{paths_for(base).models}/{name}" if base and name else None


def holds_model(role: str, settings) -> bool:
    """Whether the device keeps the model file: the master loads it; a worker only with
    `model_on_workers` (RPC sends a worker its tensors, it needs no file)."""
    return role == "master" or bool(settings.model_on_workers)


def server_address_of(name: str, settings) -> tuple[str, int]:
    """Where llama-server listens: llama_server_host (else the cluster address) and port."""
    return settings.llama_server_host or cluster_address_of(name, settings), settings.llama_server_port


def api_url_of(name: str, settings) -> str:
    """The master's HTTP API as clients reach it: where llama-server listens, or its cluster
    address when it listens everywhere."""
    host, port = server_address_of(name, settings)
    if is_wildcard(host):
        host = cluster_address_of(name, settings)
    return f"http://{host_port(host, port)}"


def device_class_of(settings, facts: Mapping[str, Any]) -> str:
    """The class a measured speed carries over to (llamafleet.plan.speed): the same CPU
    architecture, build rung and thread count compute alike. Empty when the CPU is unknown."""
    cpu = facts.get("CpuProfile") or {}
    if not cpu.get("arch"):
        return ""
    return f"{cpu.get('arch')} {march_of(settings, cpu, facts.get(REFUSALS_FACT)) or '-'} t{threads_of(settings, cpu)}"


def rpc_cache_of(settings, link_mbit: float | None) -> bool:
    """rpc_cache, else on when the worker's link was measured slower than CACHE_BELOW_MBIT: the
    cache costs the device disk, and pays only where sending the weights again is slow."""
    from llamafleet.plan.speed import CACHE_BELOW_MBIT

    if settings.rpc_cache is not None:
        return bool(settings.rpc_cache)
    return link_mbit is not None and link_mbit < CACHE_BELOW_MBIT
