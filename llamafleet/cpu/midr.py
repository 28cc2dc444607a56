"""ARM MIDR (implementer, part) → core type.

`/proc/cpuinfo` on ARM prints, per CPU, `CPU implementer` (MIDR_EL1[31:24]) and `CPU part`
(MIDR_EL1[15:4]). Only the *pair* names a core: part 0xd40 is a Neoverse-V1 under ARM (0x41)
but a Cortex-A76 under HiSilicon (0x48); part 0x001 is Qualcomm Oryon, Samsung Mongoose M1 and
Fujitsu A64FX. So the table is keyed on the pair, never on the part alone.

Sources (facts collected in /work/shared/reference/cpuinfo/midr-table.md):
- Linux kernel, arch/arm64/include/asm/cputype.h (MIDR_CORTEX_*, QCOM_CPU_PART_KRYO_*, the
  comment that Kryo 5XX/6XX report plain ARM parts, HISI_CPU_PART_*).
  https://github.com/torvalds/linux/blob/master/arch/arm64/include/asm/cputype.h
- util-linux, sys-utils/lscpu-arm.c (implementer and part names, incl. the 32-bit parts and the
  HiSilicon-branded Cortex-A76/A77 of Kirin phones).
  https://github.com/util-linux/util-linux/blob/master/sys-utils/lscpu-arm.c

Names follow GCC's `-mcpu` spelling ("cortex-a76") where GCC or clang has a name; vendor
semi-custom cores keep a vendor name ("kryo-4xx-gold") and record the ARM core they derive from
in `tune` (what a compiler should tune for). Deliberately absent: Apple 0x61/0x000 and
implementer 0x00, which virtual machines report for every CPU whatever the host is (util-linux
would say "Swift", a 32-bit iPhone core); those become "unknown" and the ISA comes from the
Features line alone.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CoreType:
    """One kind of core.

    name:   GCC-style core name, or a vendor name for semi-custom cores.
    tune:   the -mtune/-mcpu name a compiler should use for it (the ARM core a Kryo or
            HiSilicon part is built from); None when no compiler has a name for it.
    little: an in-order efficiency core (Cortex-A53/A55/A510/A520 class). Little cores are left
            out of the thread count: llama.cpp waits for its slowest thread.
    """

    name: str
    tune: str | None = None
    little: bool = False

    @property
    def arm_equivalent(self) -> str | None:
        """The ARM core this vendor part derives from, when it is not an ARM part itself."""
        if self.tune and self.tune != self.name:
            return self.tune
        return None


def _same(name: str, little: bool = False) -> CoreType:
    """A core whose own name is also its compiler tuning name."""
    return CoreType(name, name, little)


def _untunable(name: str, little: bool = False) -> CoreType:
    """A core that no compiler can tune for by name."""
    return CoreType(name, None, little)


ARM = 0x41

# (implementer, part) → CoreType. A-profile parts only; M/R-profile parts never run Linux
# userland with llama.cpp.
MIDR_TABLE: dict[tuple[int, int], CoreType] = {
    # --- ARM Ltd, 32-bit cores (Raspberry Pi 2, old phones) ---
    (ARM, 0xC05): _untunable("cortex-a5", little=True),
    (ARM, 0xC07): _same("cortex-a7", little=True),
    (ARM, 0xC08): _same("cortex-a8"),
    (ARM, 0xC09): _same("cortex-a9"),
    (ARM, 0xC0D): _same("cortex-a17"),  # util-linux names both 0xc0d and 0xc0e Cortex-A17
    (ARM, 0xC0E): _same("cortex-a17"),
    (ARM, 0xC0F): _same("cortex-a15"),
    # --- ARM Ltd, ARMv8 ---
    (ARM, 0xD01): _untunable("cortex-a32", little=True),
    (ARM, 0xD02): _untunable("cortex-a34", little=True),
    (ARM, 0xD03): _same("cortex-a53", little=True),
    (ARM, 0xD04): _same("cortex-a35", little=True),
    (ARM, 0xD05): _same("cortex-a55", little=True),
    (ARM, 0xD06): _untunable("cortex-a65"),
    (ARM, 0xD07): _same("cortex-a57"),
    (ARM, 0xD08): _same("cortex-a72"),
    (ARM, 0xD09): _same("cortex-a73"),
    (ARM, 0xD0A): _same("cortex-a75"),
    (ARM, 0xD0B): _same("cortex-a76"),
    (ARM, 0xD0C): _same("neoverse-n1"),
    (ARM, 0xD0D): _same("cortex-a77"),
    (ARM, 0xD0E): _same("cortex-a76ae"),
    (ARM, 0xD40): _same("neoverse-v1"),
    (ARM, 0xD41): _same("cortex-a78"),
    (ARM, 0xD42): _same("cortex-a78ae"),
    (ARM, 0xD43): _untunable("cortex-a65ae"),
    (ARM, 0xD44): _same("cortex-x1"),
    (ARM, 0xD46): _same("cortex-a510", little=True),
    (ARM, 0xD47): _same("cortex-a710"),
    (ARM, 0xD48): _same("cortex-x2"),
    (ARM, 0xD49): _same("neoverse-n2"),
    (ARM, 0xD4A): _untunable("neoverse-e1"),
    (ARM, 0xD4B): _same("cortex-a78c"),
    (ARM, 0xD4C): _same("cortex-x1c"),
    (ARM, 0xD4D): _same("cortex-a715"),
    (ARM, 0xD4E): _same("cortex-x3"),
    (ARM, 0xD4F): _same("neoverse-v2"),
    (ARM, 0xD80): _same("cortex-a520", little=True),
    (ARM, 0xD81): _same("cortex-a720"),
    (ARM, 0xD82): _same("cortex-x4"),
    (ARM, 0xD83): _untunable("neoverse-v3ae"),
    (ARM, 0xD84): _same("neoverse-v3"),
    (ARM, 0xD85): _same("cortex-x925"),
    (ARM, 0xD87): _same("cortex-a725"),
    (ARM, 0xD88): _untunable("cortex-a520ae", little=True),
    (ARM, 0xD89): _untunable("cortex-a720ae"),
    (ARM, 0xD8A): _untunable("c1-nano", little=True),
    (ARM, 0xD8B): _untunable("c1-pro"),
    (ARM, 0xD8C): _untunable("c1-ultra"),
    (ARM, 0xD8E): _same("neoverse-n3"),
    (ARM, 0xD8F): _untunable("cortex-a320", little=True),
    (ARM, 0xD90): _untunable("c1-premium"),
    # --- Broadcom ---
    (0x42, 0x00F): _untunable("brahma-b15"),
    (0x42, 0x100): CoreType("brahma-b53", "cortex-a53", little=True),
    (0x42, 0x516): _same("thunderx2t99"),
    # --- Cavium ---
    (0x43, 0x0A1): _untunable("thunderxt88"),
    (0x43, 0x0AF): _same("thunderx2t99"),
    # --- Fujitsu ---
    (0x46, 0x001): _same("a64fx"),
    # --- HiSilicon: Kirin phones brand plain ARM cores with their own implementer code ---
    (0x48, 0xD01): _same("tsv110"),  # Kunpeng 920 / TaiShan v110
    (0x48, 0xD02): _untunable("hip09"),  # TaiShan big core of Kirin 9000S
    (0x48, 0xD40): CoreType("hisilicon-cortex-a76", "cortex-a76"),  # Kirin 980/990
    (0x48, 0xD41): CoreType("hisilicon-cortex-a77", "cortex-a77"),  # Kirin 9000
    # --- NVIDIA ---
    (0x4E, 0x000): _untunable("denver"),
    (0x4E, 0x003): _untunable("denver-2"),
    (0x4E, 0x004): _same("carmel"),
    # --- APM ---
    (0x50, 0x000): _untunable("x-gene"),
    # --- Qualcomm: Kryo 2XX..4XX are Cortex derivatives with Qualcomm part numbers;
    # Kryo 5XX/6XX and Snapdragon 8 Gen 1+ report plain ARM parts (cputype.h comment) ---
    (0x51, 0x001): _same("oryon-1"),
    (0x51, 0x00F): _untunable("scorpion"),
    (0x51, 0x02D): _untunable("scorpion"),
    (0x51, 0x04D): _same("krait"),
    (0x51, 0x06F): _same("krait"),
    (0x51, 0x201): _same("kryo"),
    (0x51, 0x205): _same("kryo"),
    (0x51, 0x211): _same("kryo"),
    (0x51, 0x800): CoreType("kryo-2xx-gold", "cortex-a73"),
    (0x51, 0x801): CoreType("kryo-2xx-silver", "cortex-a53", little=True),
    (0x51, 0x802): CoreType("kryo-3xx-gold", "cortex-a75"),
    (0x51, 0x803): CoreType("kryo-3xx-silver", "cortex-a55", little=True),
    (0x51, 0x804): CoreType("kryo-4xx-gold", "cortex-a76"),
    (0x51, 0x805): CoreType("kryo-4xx-silver", "cortex-a55", little=True),
    (0x51, 0xC00): _same("falkor"),
    (0x51, 0xC01): _same("saphira"),
    # --- Samsung Mongoose (Exynos 8890..990): own designs, clang-only names ---
    (0x53, 0x001): _same("exynos-m1"),
    (0x53, 0x002): _same("exynos-m3"),
    (0x53, 0x003): _same("exynos-m4"),
    (0x53, 0x004): _same("exynos-m5"),
    # --- Apple (Asahi Linux on bare metal; VMs report 0x000 and stay unknown) ---
    (0x61, 0x022): CoreType("apple-icestorm", "apple-m1", little=True),
    (0x61, 0x023): CoreType("apple-firestorm", "apple-m1"),
    (0x61, 0x024): CoreType("apple-icestorm", "apple-m1", little=True),
    (0x61, 0x025): CoreType("apple-firestorm", "apple-m1"),
    (0x61, 0x028): CoreType("apple-icestorm", "apple-m1", little=True),
    (0x61, 0x029): CoreType("apple-firestorm", "apple-m1"),
    (0x61, 0x032): CoreType("apple-blizzard", "apple-m2", little=True),
    (0x61, 0x033): CoreType("apple-avalanche", "apple-m2"),
    (0x61, 0x034): CoreType("apple-blizzard", "apple-m2", little=True),
    (0x61, 0x035): CoreType("apple-avalanche", "apple-m2"),
    (0x61, 0x038): CoreType("apple-blizzard", "apple-m2", little=True),
    (0x61, 0x039): CoreType("apple-avalanche", "apple-m2"),
    # --- Microsoft, Phytium, Ampere ---
    (0x6D, 0xD49): CoreType("cobalt-100", "neoverse-n2"),
    (0x70, 0x660): _untunable("ftc660"),
    (0x70, 0x661): _untunable("ftc661"),
    (0x70, 0x662): _untunable("ftc662"),
    (0x70, 0x663): _untunable("ftc663"),
    (0x70, 0x664): _untunable("ftc664"),
    (0x70, 0x862): _untunable("ftc862"),
    (0xC0, 0xAC3): _same("ampere1"),
    (0xC0, 0xAC4): _same("ampere1a"),
}


def unknown_core(implementer: int | None, part: int | None) -> CoreType:
    """A core the table does not know. It counts as big (better one slow thread too many than
    a fast core left idle) and gets no tuning; its name keeps the raw ids for bug reports."""
    imp = f"{implementer:#04x}" if implementer is not None else "none"
    prt = f"{part:#05x}" if part is not None else "none"
    return CoreType(f"unknown-{imp}-{prt}", None, little=False)


def lookup(implementer: int | None, part: int | None) -> CoreType:
    """Core type for a MIDR pair; `unknown_core` when the pair is not in the table."""
    if implementer is None or part is None:
        return unknown_core(implementer, part)
    return MIDR_TABLE.get((implementer, part)) or unknown_core(implementer, part)
