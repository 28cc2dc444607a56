"""Speed profiles: lab hosts that differ in CPU and link speed, and a link that can drop out.

Every lab host shares this machine's CPUs and sits on one bridge, so without a profile every
device is as fast as every other. A profile (`lab up --profile NAME`, PROFILES below) gives
named hosts a share of the CPU and a slower link; hosts it does not name run at full speed.

Stands for:
- **A mid-range or old phone's CPU** (`cpu_percent`): a cgroup v1 `cpu` cgroup per host,
  CPU_ROOT/<netns name>, with a CFS quota of `cpu_percent` % of one CPU per 100 ms period
  (cpu.cfs_quota_us / cpu.cfs_period_us, the kernel's sched-bwc documentation). The host's init
  joins it before it starts anything (hostinit.py `launch`), so sshd, services, boot scripts and
  SSH sessions are in it; `lab exec` joins it too (execute.py). A systemd host gets the quota on
  the cpu cgroup its init makes for the container (hostinit_nspawn.cgroup_dirs: nspawn-<name>).
  The host still sees all of the machine's CPUs (nproc): a quota limits time, not CPUs, like a
  phone whose cores are each slower, not fewer. Processes are throttled for the rest of a period
  once the quota is used, so a slow host's work arrives in bursts of at most 100 ms.
- **A Wi-Fi link's rate** (`link_mbit`): a token bucket filter (tc-tbf(8)) on both ends of the
  host's veth: the machine's end (lfl-<host>) shapes what the host downloads, the host's eth0
  shapes what it uploads. Real Wi-Fi shares its airtime between both directions; the lab gives
  each direction the full rate. **Latency and loss are not emulated**: that needs netem, which
  this kernel lacks; tbf's `latency` only bounds how long a packet may queue before it is dropped,
  as a Wi-Fi driver's queue would.
- **A phone leaving Wi-Fi** (`lab link HOST down`, then `up`): the machine's end of the host's
  veth goes down, so the host's eth0 loses its carrier and no frame passes either way. No one
  sends a reset: connections in flight hang (their retransmissions go nowhere) and resume when
  the link is back, new connections time out, as when a phone walks out of range. An nft drop
  would do the same to packets but leave the host's carrier up and need br_netfilter to see
  bridged traffic. The host cannot undo it (its end stays up, the access point is gone).
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from llamafleet_lab.topology import LabHost

# The lab's cpu cgroups (cgroup v1 `cpu` controller), beside the phones' freezer and cpuset ones.
CPU_ROOT = Path("/sys/fs/cgroup/cpu/llamafleet-lab")
CFS_PERIOD_US = 100_000  # the kernel's default period: the quota is a share of every 100 ms
# tbf's bucket: 5 ms of traffic at the rate, never less than about ten full frames (a bucket
# smaller than one frame passes nothing; a small one keeps the rate from being exceeded in bursts).
BURST_SECONDS = 0.005
MIN_BURST_BYTES = 16 * 1024
# How long a packet may wait in the bucket's queue before tbf drops it (a driver's queue).
QUEUE_LATENCY = "50ms"
HOST_END = "eth0"  # the host's end of its veth (network.create_network)


@dataclass(frozen=True)
class HostProfile:
    """How fast one host is. None: as fast as the machine allows."""

    cpu_percent: int | None = None  # percent of one CPU, for all the host's processes together
    link_mbit: float | None = None  # each direction of its link, in megabits per second
    stands_for: str = ""


# Numbers relative to a machine of 2 CPUs, where a host without a quota may use both (200 %):
# llama.cpp on a mid-range phone runs at roughly a quarter of a desktop's speed and on an old
# one at an eighth, hence 50 % (a quarter of 200 %) and 25 % (an eighth). Links: a phone near
# its access point gets on the order of 100 Mbit/s of real throughput, one far away or on
# 2.4 GHz about 20; the Linux hosts stand for wired boxes and keep the veth's full speed.
PROFILES: dict[str, dict[str, HostProfile]] = {
    "none": {},
    "mixed": {
        "phone1": HostProfile(cpu_percent=50, link_mbit=100, stands_for="a mid-range phone near its Wi-Fi access point"),
        "phone2": HostProfile(cpu_percent=25, link_mbit=20, stands_for="an old phone on a weak 2.4 GHz Wi-Fi link"),
    },
}


def profile_hosts(profile: str, hosts: list[LabHost]) -> list[LabHost]:
    """`hosts` with the profile's limits filled in. ValueError for an unknown profile or one that
    names a host the lab does not have (before anything is built)."""
    if profile not in PROFILES:
        raise ValueError(f"--profile: unknown profile {profile!r} (one of {', '.join(sorted(PROFILES))})")
    table = PROFILES[profile]
    names = {host.name for host in hosts}
    for name, limits in table.items():
        if name not in names:
            raise ValueError(f"--profile {profile} limits {name}, which this lab does not have: add hosts (--phones, --linux)")
        if limits.cpu_percent is not None and limits.cpu_percent < 1:
            raise ValueError(f"--profile {profile}: {name} cpu_percent must be at least 1, got {limits.cpu_percent}")
        if limits.link_mbit is not None and limits.link_mbit <= 0:
            raise ValueError(f"--profile {profile}: {name} link_mbit must be positive, got {limits.link_mbit}")
    return [
        dataclasses.replace(host, cpu_percent=table[host.name].cpu_percent, link_mbit=table[host.name].link_mbit)
        if host.name in table else host
        for host in hosts
    ]


def missing_pieces(hosts: list[LabHost]) -> list[str]:
    """What the machine lacks for these hosts' limits (listed by `lab up` before it builds)."""
    missing = []
    if any(host.cpu_percent for host in hosts) and not (CPU_ROOT.parent / "cpu.cfs_quota_us").exists():
        missing.append(f"the cgroup v1 cpu controller at {CPU_ROOT.parent} (for --profile CPU quotas)")
    if any(host.link_mbit for host in hosts) and not shutil.which("tc"):
        missing.append("tc (iproute2, for --profile link rates)")
    return missing


# --- CPU --------------------------------------------------------------------------------------


def quota_us(cpu_percent: int) -> int:
    """cpu.cfs_quota_us for `cpu_percent` % of one CPU per CFS_PERIOD_US."""
    return CFS_PERIOD_US * cpu_percent // 100


def cpu_cgroup(host: LabHost) -> Path | None:
    """The host's cpu cgroup, or None when it has no CPU limit. A systemd host's is the one its
    init makes for the container in every hierarchy (hostinit_nspawn.cgroup_dirs)."""
    if host.cpu_percent is None:
        return None
    return CPU_ROOT / (f"nspawn-{host.name}" if host.boots_systemd else host.netns)


def cpu_settings(host: LabHost) -> dict[str, str]:
    """File name → content for the host's cpu cgroup (empty without a limit)."""
    if host.cpu_percent is None:
        return {}
    return {"cpu.cfs_period_us": str(CFS_PERIOD_US), "cpu.cfs_quota_us": str(quota_us(host.cpu_percent))}


def make_cpu_cgroup(host: LabHost) -> dict:
    """Create the host's cpu cgroup with its quota; return what its init spec needs: the cgroup
    its launcher joins ({"cpu_cgroup": path}). A systemd host's init joins it by itself, and
    anything else gets {}."""
    cgroup = cpu_cgroup(host)
    if cgroup is None:
        return {}
    cgroup.mkdir(parents=True, exist_ok=True)
    for name, value in cpu_settings(host).items():  # period first: a quota is checked against it
        (cgroup / name).write_text(value)
    return {} if host.boots_systemd else {"cpu_cgroup": str(cgroup)}


def in_cpu_cgroup(host: LabHost, argv: list[str]) -> list[str]:
    """`argv` run from inside the host's cpu cgroup (`lab exec`: a command typed on the slow
    device is as slow as the device); `argv` itself when the host has no CPU limit."""
    cgroup = cpu_cgroup(host)
    if cgroup is None:
        return argv
    # The shell moves itself ($$) into the cgroup, then becomes the command: no helper needed.
    return ["sh", "-c", 'echo $$ > "$1" && shift && exec "$@"', "lab-cpu", str(cgroup / "cgroup.procs"), *argv]


# --- link -------------------------------------------------------------------------------------


def burst_bytes(link_mbit: float) -> int:
    return max(int(link_mbit * 1_000_000 / 8 * BURST_SECONDS), MIN_BURST_BYTES)


def tbf_args(link_mbit: float) -> list[str]:
    """tc's arguments for a token bucket at `link_mbit` (tc's kbit is 1000 bit/s)."""
    return ["tbf", "rate", f"{round(link_mbit * 1000)}kbit", "burst", str(burst_bytes(link_mbit)), "latency", QUEUE_LATENCY]


def link_commands(host: LabHost) -> list[list[str]]:
    """The tc commands that limit the host's link: the machine's end (download), the host's
    eth0 in its namespace (upload). Empty without a link limit."""
    if host.link_mbit is None:
        return []
    shaper = tbf_args(host.link_mbit)
    return [
        ["tc", "qdisc", "replace", "dev", host.veth, "root", *shaper],
        ["tc", "-n", host.netns, "qdisc", "replace", "dev", HOST_END, "root", *shaper],
    ]


def _run(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({' '.join(argv)}): {result.stderr.strip()}")


def limit_links(hosts: list[LabHost]) -> None:
    """Apply every host's link limit (after network.create_network)."""
    for host in hosts:
        for argv in link_commands(host):
            _run(argv, f"limiting {host.name}'s link")


def link_state_command(host: LabHost, up: bool) -> list[str]:
    return ["ip", "link", "set", "dev", host.veth, "up" if up else "down"]


def set_link(name: str, up: bool, state=None) -> None:
    """`lab link HOST down|up`: the host leaves its Wi-Fi, or comes back (module docstring).
    The link's rate limit stays: tbf is kept on a device that goes down and up."""
    from llamafleet_lab.state import LabError, load_state

    state = state or load_state()
    host = state.host(name)
    if link_is_up(host) is None:
        raise LabError(f"{name} has no link {host.veth}: is the lab up? (`llamafleet lab status`)")
    try:
        _run(link_state_command(host, up), f"taking {name}'s link {'up' if up else 'down'}")
    except RuntimeError as error:
        raise LabError(str(error)) from None


def link_is_up(host: LabHost) -> bool | None:
    """Whether the machine's end of the host's link is up (IFF_UP), None when it is missing."""
    try:
        flags = int(Path("/sys/class/net", host.veth, "flags").read_text(), 16)
    except (OSError, ValueError):
        return None
    return bool(flags & 0x1)


def describe(host: LabHost) -> dict:
    """What `lab status` shows of a host's profile: its CPU share, link rate and link state."""
    up = link_is_up(host)
    return {
        "cpu_percent": host.cpu_percent,
        "link_mbit": host.link_mbit,
        "link": "missing" if up is None else "up" if up else "down",
    }
