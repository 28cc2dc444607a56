"""A cluster with an ARM phone: phone1 is a Google Tensor G2 (Pixel 7) as far as every program on
it can tell (llamafleet_lab.arm_phone), linux1 (x86_64) is the master.

The lab's promises first (uname, /proc/cpuinfo, cpufreq, a compiler that builds for the phone,
qemu's CPU with no feature the dump lacks) -> cold deploy -> second deploy "No changes" -> verify
-> the worker is an AArch64 binary built with the table's flags for that SoC, running under qemu,
and a completion goes through it -> `llama_cpu_arch` forcing +i8mm, which the emulated CPU lacks:
the deploy's self-test meets SIGILL, the deploy says so and builds one step down, the cluster
answers, and the next deploy changes nothing. Figures printed, not asserted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llamafleet.cpu.flags import build_flags
from llamafleet.cpu.profile import parse_cpuinfo
from llamafleet.cpu.table import table_for
from llamafleet_lab import arm_phone, down, lab_exec, load_state, qemu_user, up

sys.path.insert(0, str(Path(__file__).parent))
from cluster_steps import changes, copy_deploy_dir, wait_for  # noqa: E402

pytestmark = [pytest.mark.lab, pytest.mark.slow]

PHONE, MASTER = "phone1", "linux1"
SOC = "google-tensor-g2"
INVENTORY = "inventory/lab.py"
OVER_REACH = "inventory/over_reach.py"
OVER_REACH_ARCH = "armv8.2-a+dotprod+fp16+i8mm"
OVER_REACH_SOURCE = f'''"""The lab with phone1's llama_cpu_arch forcing i8mm (written by tests/integration/test_arm_phone.py)."""
from llamafleet_lab import inventory_groups

_groups = inventory_groups()
termux = [(name, {{**data, "llama_cpu_arch": "{OVER_REACH_ARCH}"}}) for name, data in _groups["termux"]]
linux = _groups["linux"]
'''
BIN = Path(sys.executable).parent
BASE = "/data/data/com.termux/files/home/llamafleet"
FIGURES: dict[str, str] = {}
WORKDIR = Path(".")


def run(*argv: str, timeout: int = 3600) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=WORKDIR, capture_output=True, text=True, timeout=timeout)


def deploy(inventory: str = INVENTORY) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = run(str(BIN / "pyinfra"), "-y", inventory, "deploy.py")
    return result, time.monotonic() - started


def phone(command: str) -> str:
    result = lab_exec(PHONE, command)
    assert result.returncode == 0, f"{command}: {result.stderr}"
    return result.stdout


def completion(wait_seconds: int = 300) -> tuple[str, float]:
    started = time.monotonic()
    deadline = started + wait_seconds
    while True:
        result = run(str(BIN / "llamafleet"), "complete", INVENTORY, "The capital of France is", timeout=300)
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout, time.monotonic() - started


def table_march() -> str:
    """What the flag table chooses for the SoC's dump (the deploy must build exactly this)."""
    profile = parse_cpuinfo(arm_phone.dump_text(SOC), "aarch64", table_for(None))
    return build_flags(profile.to_dict(), platform="termux").march


def stamp() -> str:
    return phone(f"cat {BASE}/bin/build-stamp.json")


PRELOAD = Path("/etc/ld.so.preload")
PRELOAD_BEFORE: dict[str, bool] = {}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (network namespaces, binfmt_misc)")
    global WORKDIR
    WORKDIR = copy_deploy_dir(tmp_path_factory.mktemp("deploy-arm"))
    (WORKDIR / OVER_REACH).write_text(OVER_REACH_SOURCE)
    down()
    PRELOAD_BEFORE["exists"] = PRELOAD.exists()
    started = time.monotonic()
    up(phones=1, linux=1, socs={PHONE: SOC})
    FIGURES["lab up"] = f"{time.monotonic() - started:.1f} s"
    yield load_state()
    print("\nFIGURES " + ", ".join(f"{k}: {v}" for k, v in FIGURES.items()))
    down()


def test_every_program_on_the_phone_sees_the_soc(lab):
    assert phone("uname -m").strip() == "aarch64"
    assert phone("cat /proc/cpuinfo") == arm_phone.dump_text(SOC)
    # Big and little cores, as the Tensor G2's cpufreq reports them: X1 > A78 > A55.
    clocks = [int(phone(f"cat /sys/devices/system/cpu/cpu{i}/cpufreq/cpuinfo_max_freq")) for i in range(8)]
    assert clocks[6] > clocks[4] > clocks[0] and phone("cat /sys/devices/system/cpu/online").strip() == "0-7"
    # Not only coreutils: any program asking uname(2), as CMake does for CMAKE_SYSTEM_PROCESSOR.
    phone("pkg install -y python >/dev/null 2>&1; true")
    assert phone("python -c 'import os, platform; print(platform.machine(), os.uname().machine)'").split() == [
        "aarch64", "aarch64"]


HWCAP_PROGRAM = r"""
#include <stdio.h>
#include <sys/auxv.h>
int main(void) {
    /* Linux arm64 hwcaps (arch/arm64/include/uapi/asm/hwcap.h) with their /proc/cpuinfo names. */
    static const struct { unsigned long bit; int cap2; const char *name; } caps[] = {
        {1UL << 1, 0, "asimd"}, {1UL << 8, 0, "atomics"}, {1UL << 10, 0, "asimdhp"},
        {1UL << 12, 0, "asimdrdm"}, {1UL << 20, 0, "asimddp"}, {1UL << 22, 0, "sve"},
        {1UL << 1, 1, "sve2"}, {1UL << 13, 1, "i8mm"}, {1UL << 14, 1, "bf16"},
    };
    unsigned long h1 = getauxval(AT_HWCAP), h2 = getauxval(AT_HWCAP2);
    for (unsigned i = 0; i < sizeof caps / sizeof caps[0]; i++)
        if ((caps[i].cap2 ? h2 : h1) & caps[i].bit) printf("%s\n", caps[i].name);
    return 0;
}
"""

SIMD_PROGRAM = r"""
#include <arm_neon.h>
#include <stdio.h>
int main(void) {
    int8x16_t a = vdupq_n_s8(1), b = vdupq_n_s8(2);
#ifdef __ARM_FEATURE_MATMUL_INT8
    int32x4_t c = vmmlaq_s32(vdupq_n_s32(0), a, b);
#else
    int32x4_t c = vdotq_s32(vdupq_n_s32(0), a, b);
#endif
    printf("%d\n", vgetq_lane_s32(c, 0));
    return 0;
}
"""


def test_the_phone_builds_aarch64_programs_that_run_on_a_cpu_without_more_than_the_dump(lab):
    phone("pkg install -y clang >/dev/null 2>&1; true")
    phone(f"cat > ~/hwcap.c <<'EOF'\n{HWCAP_PROGRAM}\nEOF\ncc -O2 ~/hwcap.c -o ~/hwcap")
    assert phone("od -An -tx1 -j18 -N2 ~/hwcap").split() == ["b7", "00"]  # e_machine EM_AARCH64
    emulated = set(phone("~/hwcap").split())
    dump = arm_phone.features(arm_phone.dump_text(SOC))
    assert {"asimddp", "asimdhp"} <= emulated and emulated <= dump, (emulated, dump)
    phone(f"cat > ~/simd.c <<'EOF'\n{SIMD_PROGRAM}\nEOF\n"
          "cc -O2 -march=armv8.2-a+dotprod+fp16 ~/simd.c -o ~/dot && cc -O2 -march=armv8.2-a+dotprod+fp16+i8mm ~/simd.c -o ~/mmla")
    assert phone("~/dot").strip() == "8"
    refused = lab_exec(PHONE, "~/mmla")
    assert refused.returncode == 128 + 4, (refused.returncode, refused.stderr)  # SIGILL, as on the phone
    phone("rm -f ~/hwcap* ~/simd.c ~/dot ~/mmla")


def test_first_deploy_converges(lab):
    result, seconds = deploy()
    FIGURES["first deploy"] = f"{seconds:.0f} s"
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]


def test_second_deploy_changes_nothing(lab):
    result, seconds = deploy()
    FIGURES["no-op re-run"] = f"{seconds:.1f} s"
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert changes(output) == ("-", "-"), output[-6000:]


def test_verify_suite_passes(lab):
    result = run(str(BIN / "llamafleet"), "verify", INVENTORY, "--", "-x", "-p", "no:randomly", timeout=900)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_the_worker_is_an_aarch64_build_of_the_table_flags_running_under_qemu(lab):
    assert phone(f"od -An -tx1 -j18 -N2 {BASE}/bin/ggml-rpc-server").split() == ["b7", "00"]
    march = table_march()
    assert march == "armv8.2-a+dotprod+fp16", march  # the Tensor G2's X1/A78/A55: ARMv8.2, dotprod, fp16
    assert f"-DGGML_CPU_ARM_ARCH={march}" in stamp()
    # Run by qemu-user with the phone's CPU model (binfmt_misc: the process's program is qemu).
    # The worker as its supervisor names it (a grep of every command line may also meet a
    # short-lived process naming the binary), once it runs: a deploy may have just restarted it.
    deadline = time.monotonic() + 60
    while "run: " not in phone("SVDIR=$PREFIX/var/service sv status llama-rpc") and time.monotonic() < deadline:
        time.sleep(1)
    pid = worker_pid()
    assert phone(f"readlink /proc/{pid}/exe").strip() == qemu_user.QEMU
    assert "QEMU_CPU=cortex-a76" in phone(f"tr '\\000' '\\n' < /proc/{pid}/environ")


def test_a_completion_goes_through_the_arm_phone(lab):
    log = "$PREFIX/var/log/sv/llama-rpc/current"
    before = len(phone(f"cat {log} 2>/dev/null || true").splitlines())
    # The master reloads the model through its workers when restarted: the phone's rpc-server
    # then logs the master's connection and serves its share of the tensors.
    lab_exec(MASTER, "SVDIR=/etc/service sv restart llama-server")
    text, seconds = completion()
    FIGURES["completion after a master restart"] = f"{seconds:.0f} s"
    assert text.strip()
    after = phone(f"cat {log} 2>/dev/null || true").splitlines()[before:]
    assert any("Accepted client connection" in line for line in after), after


def worker_pid() -> int:
    status = phone("SVDIR=$PREFIX/var/service sv status llama-rpc")
    return int(status.split("(pid ", 1)[1].split(")", 1)[0])


def test_an_over_reaching_llama_cpu_arch_is_caught_by_the_self_test_and_built_one_step_down(lab):
    pid = worker_pid()
    result, seconds = deploy(OVER_REACH)
    FIGURES["deploy with +i8mm forced (SIGILL, one step down)"] = f"{seconds:.0f} s"
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    said = [line.strip() for line in output.splitlines() if "SIGILL" in line]
    print("\nTHE DEPLOY SAID: " + "\n".join(said))
    assert any(PHONE in line and "i8mm" in line for line in said), output[-6000:]
    assert "+i8mm" not in stamp() and "-DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16" in stamp()
    assert "i8mm" in phone(f"cat {BASE}/etc/cpu-refused")
    # One step down is the table's rung, installed already: kept, and the worker not restarted.
    assert worker_pid() == pid
    text, seconds = completion()
    assert text.strip()


def test_the_next_deploy_with_the_over_reach_changes_nothing(lab):
    result, seconds = deploy(OVER_REACH)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert changes(output) == ("-", "-"), output[-6000:]
    assert wait_for(lambda: "run" in phone("SVDIR=$PREFIX/var/service sv status llama-rpc"), 30)


def test_down_leaves_no_arm_piece_on_the_machine(lab):
    down()
    registered = os.listdir(qemu_user.BINFMT_DIR) if (qemu_user.BINFMT_DIR / "register").exists() else []
    assert not [entry for entry in registered if entry.startswith("llamafleet-lab")], registered
    assert not qemu_user.MACHINE_DIR.exists()
    assert PRELOAD.exists() == PRELOAD_BEFORE["exists"]
