"""qemu-user for the lab's ARM phones: binfmt_misc entries, their interpreter, and the library that
makes uname(2) report the phone's machine (see arm_phone.py for what the phone stands for).

Stands for: the phone's CPU running the phone's programs. binfmt_misc (kernel
Documentation/admin-guide/binfmt-misc.rst) hands each ARM ELF file to Debian's qemu-user with the
phone's CPU model; the entries are machine-wide while the lab is up (outside a lab phone such a
program runs with qemu's default CPU).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Machine-wide pieces: the binfmt_misc interpreter and the uname libraries must be readable by
# every phone user (the lab's state directory is mode 700), so they live here while a lab is up.
MACHINE_DIR = Path("/usr/local/lib/llamafleet-lab")
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
MOUNTED_MARK = MACHINE_DIR / ".binfmt_misc-mounted-by-the-lab"


@dataclass(frozen=True)
class Machine:
    """What `uname -m` says on the phone, and how programs built for it are built and run."""

    uname: str
    platform: str  # AT_PLATFORM of its programs under qemu ($PLATFORM in the preload line)
    target: str  # the clang target and Debian cross sysroot (/usr/<target>)
    qemu: str
    magic: str  # the ELF header, as qemu's own binfmt configuration matches it (scripts/qemu-binfmt-conf.sh)
    mask: str

    @property
    def sysroot(self) -> str:
        return f"/usr/{self.target}"

    @property
    def interpreter(self) -> Path:
        return MACHINE_DIR / f"qemu-{self.uname}-phone"

    @property
    def binfmt_name(self) -> str:
        return f"llamafleet-lab-{self.uname}"


_MASK = r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"
MACHINES = {
    "aarch64": Machine("aarch64", "aarch64", "aarch64-linux-gnu", "/usr/bin/qemu-aarch64-static",
                       r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00", _MASK),
    # Termux on armeabi-v7a uses the softfp float ABI: Debian's armel (soft-float ABI) libraries
    # link with it, armhf's (hard-float) would not.
    "armv7l": Machine("armv7l", "v7l", "arm-linux-gnueabi", "/usr/bin/qemu-arm-static",
                      r"\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28\x00", _MASK),
}
QEMU = MACHINES["aarch64"].qemu

# Inside a phone: where its qemu CPU model is written (read by the interpreter), and the
# preload line. $PLATFORM is expanded by each program's dynamic loader: x86_64 for the
# machine's programs, aarch64 or v7l for the phone's builds under qemu (which get a same-named
# library of their own architecture, so their loader has nothing to complain about).
PHONE_QEMU_CPU_FILE = "/system/etc/llamafleet-lab/qemu-cpu"
PRELOAD_FILE = "/etc/ld.so.preload"


def preload_line(machine: Machine) -> str:
    return str(MACHINE_DIR / "$PLATFORM" / f"uname-{machine.uname}.so")


_UNAME_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>
#include <sys/utsname.h>
/* The lab's ARM phone: uname() reports the phone's machine (llamafleet_lab/arm_phone.py). */
int uname(struct utsname *name) {
    static int (*real)(struct utsname *);
    if (!real) real = (int (*)(struct utsname *))dlsym(RTLD_NEXT, "uname");
    int result = real(name);
    if (result == 0) {
        strncpy(name->machine, MACHINE, sizeof name->machine - 1);
        name->machine[sizeof name->machine - 1] = 0;
    }
    return result;
}
"""

# The binfmt_misc interpreter, in C so that it can hand the program's path to qemu as its argv[0]:
# /proc/PID/cmdline (what ps and llamafleet's probes read) then starts with the program, as on
# the phone, followed by its path again (qemu's own argument) and its arguments. qemu takes its
# options from the environment (QEMU_CPU, QEMU_LD_PREFIX) and keeps them from the program.
_INTERPRETER_SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char cpu[64] = "";
    FILE *file = fopen(CPU_FILE, "r");
    if (file) {
        if (fgets(cpu, sizeof cpu, file)) cpu[strcspn(cpu, "\n")] = 0;
        fclose(file);
    }
    if (argc < 2) return 127;
    if (cpu[0]) setenv("QEMU_CPU", cpu, 1);
    setenv("QEMU_LD_PREFIX", SYSROOT, 1);
    setenv("QEMU_UNSET_ENV", "QEMU_CPU,QEMU_LD_PREFIX,QEMU_UNSET_ENV", 1);
    argv[0] = argv[1];
    execv(QEMU, argv);
    perror(QEMU);
    return 127;
}
"""



def missing_programs(machines: set[Machine]) -> list[str]:
    """Machine programs the ARM phones need (scripts/setup installs them)."""
    wanted = ["/usr/bin/clang", "/usr/bin/cc"]
    for machine in machines:
        wanted += [machine.qemu, f"{machine.sysroot}/lib", f"/usr/bin/{machine.target}-ld"]
    missing = [path for path in wanted if not os.path.exists(path)]
    with open("/proc/filesystems") as filesystems:
        if "binfmt_misc" not in filesystems.read().split():
            missing.append("the kernel's binfmt_misc (modprobe binfmt_misc)")
    return missing


def _compile(source: str, out: Path, *flags: str, compiler: str = "clang") -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([compiler, "-O2", *flags, "-x", "c", "-", "-o", str(out)], input=source, text=True, check=True,
                   capture_output=True)
    out.chmod(0o755)


def install_machine_pieces(machines: set[Machine]) -> None:
    """For each machine the ARM phones are: the uname libraries and the binfmt_misc interpreter,
    registered for that machine's ELF files. binfmt_misc is machine-wide: while the lab is up,
    such programs run through qemu everywhere (with qemu's default CPU outside a lab phone)."""
    MACHINE_DIR.mkdir(parents=True, exist_ok=True)
    MACHINE_DIR.chmod(0o755)
    if not (BINFMT_DIR / "register").exists():
        mounted = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)], capture_output=True,
                                 text=True)
        if mounted.returncode != 0:
            raise RuntimeError(f"cannot mount binfmt_misc on {BINFMT_DIR}: {mounted.stderr.strip()}")
        MOUNTED_MARK.write_text("the lab mounted binfmt_misc; `lab down` unmounts it\n")
    for machine in sorted(machines, key=lambda m: m.uname):
        define = f'-DMACHINE="{machine.uname}"'
        library = f"uname-{machine.uname}.so"
        _compile(_UNAME_SHIM, MACHINE_DIR / "x86_64" / library, "-shared", "-fPIC", define)
        _compile(_UNAME_SHIM, MACHINE_DIR / machine.platform / library, f"--target={machine.target}", "-shared",
                 "-fPIC", define)
        defines = [f'-DCPU_FILE="{PHONE_QEMU_CPU_FILE}"', f'-DSYSROOT="{machine.sysroot}"', f'-DQEMU="{machine.qemu}"']
        _compile(_INTERPRETER_SOURCE, machine.interpreter, *defines, compiler="cc")
        entry = BINFMT_DIR / machine.binfmt_name
        if entry.exists():
            entry.write_text("-1")
        # The kernel tries the newest entry first, so this one wins over a distribution's own
        # qemu-aarch64 entry for the same header while the lab is up.
        # No flags: the interpreter is looked up in the calling process's mount namespace at each
        # exec and gets the program's path (the kernel checks the file's x bit as usual).
        (BINFMT_DIR / "register").write_text(
            f":{machine.binfmt_name}:M::{machine.magic}:{machine.mask}:{machine.interpreter}:")


def remove_machine_pieces() -> list[str]:
    problems = []
    for machine in MACHINES.values():
        entry = BINFMT_DIR / machine.binfmt_name
        try:
            if entry.exists():
                entry.write_text("-1")
        except OSError as error:
            problems.append(f"binfmt_misc entry {entry}: {error}")
    if MOUNTED_MARK.exists():
        # Unmounted only when nothing but the lab used it meanwhile (no other entry).
        if set(os.listdir(BINFMT_DIR)) <= {"register", "status"}:
            unmounted = subprocess.run(["umount", str(BINFMT_DIR)], capture_output=True, text=True)
            if unmounted.returncode != 0:
                problems.append(f"umount {BINFMT_DIR}: {unmounted.stderr.strip()}")
    if MACHINE_DIR.exists():
        shutil.rmtree(MACHINE_DIR, ignore_errors=True)
    return problems
