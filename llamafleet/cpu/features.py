"""Normalise the kernel's CPU feature words into the names llamafleet reasons about.

The kernel prints hwcap names (`Features` on ARM, `flags` on x86). A few of them need
translating (`asimddp` is the dot-product extension, FP16 needs both `fphp` and `asimdhp`),
most are kept as the kernel spells them. Only features that matter for choosing compiler flags
are kept; the rest (sha3, evtstrm, ...) would only add noise to the profile.
"""

from __future__ import annotations

# AArch64 hwcap word → normalised name. `fphp`/`asimdhp` are handled together (see below).
_ARM64_NAMES = {
    "asimd": "asimd",
    "crc32": "crc",
    "aes": "aes",
    "atomics": "atomics",  # LSE, ARMv8.1
    "asimdrdm": "rdm",  # ARMv8.1
    "dcpop": "dcpop",  # ARMv8.2 (DC CVAP)
    "lrcpc": "lrcpc",
    "jscvt": "jscvt",
    "fcma": "fcma",
    "asimddp": "dotprod",
    "asimdfhm": "fhm",
    "i8mm": "i8mm",
    "bf16": "bf16",
    "sve": "sve",
    "sve2": "sve2",
    "svei8mm": "svei8mm",
    "svebf16": "svebf16",
    "sme": "sme",
    "sme2": "sme2",
}

# 32-bit ARM hwcap words (also what a 32-bit process sees on a 64-bit kernel).
_ARM32_NAMES = {
    "neon": "neon",
    "vfp": "vfp",
    "vfpv3": "vfpv3",
    "vfpv4": "vfpv4",
    "vfpd32": "vfpd32",
    "idiva": "idiva",
    "idivt": "idivt",
    "lpae": "lpae",
    "aes": "aes",
    "crc32": "crc",
    "asimddp": "dotprod",
    "i8mm": "i8mm",
}

# x86 `flags` words; `pni` is the kernel's name for SSE3 and `abm` carries LZCNT.
_X86_NAMES = {
    "sse2": "sse2",
    "pni": "sse3",
    "ssse3": "ssse3",
    "sse4_1": "sse4_1",
    "sse4_2": "sse4_2",
    "popcnt": "popcnt",
    "cx16": "cx16",
    "lahf_lm": "lahf_lm",
    "movbe": "movbe",
    "xsave": "xsave",
    "osxsave": "osxsave",
    "avx": "avx",
    "avx2": "avx2",
    "fma": "fma",
    "f16c": "f16c",
    "bmi1": "bmi1",
    "bmi2": "bmi2",
    "abm": "lzcnt",
    "avx512f": "avx512f",
    "avx512bw": "avx512bw",
    "avx512cd": "avx512cd",
    "avx512dq": "avx512dq",
    "avx512vl": "avx512vl",
    "avx512vbmi": "avx512vbmi",
    "avx512_vnni": "avx512_vnni",
    "avx512_bf16": "avx512_bf16",
    "avx_vnni": "avx_vnni",
    "amx_tile": "amx_tile",
    "amx_int8": "amx_int8",
    "amx_bf16": "amx_bf16",
}

# Words only the 32-bit (AArch32) hwcap vocabulary has: a Features line containing any of them
# was read by a 32-bit process, whatever the header line ("AArch64 Processor") claims.
ARM32_VOCABULARY = frozenset({"half", "thumb", "fastmult", "edsp", "neon", "vfp", "vfpv3", "swp", "tls"})
# Words only the AArch64 vocabulary has.
ARM64_VOCABULARY = frozenset({"asimd", "cpuid", "asimdrdm", "fphp", "asimdhp", "atomics"})


def normalise_arm64(words: set[str]) -> set[str]:
    """AArch64 Features words → normalised names."""
    found = {_ARM64_NAMES[w] for w in words if w in _ARM64_NAMES}
    # Scalar (fphp) and vector (asimdhp) half precision come together on every real core;
    # ggml needs the vector one, compilers' +fp16 turns on both, so require both.
    if {"fphp", "asimdhp"} <= words:
        found.add("fp16")
    return found


def normalise_arm32(words: set[str]) -> set[str]:
    """AArch32 Features words → normalised names."""
    found = {_ARM32_NAMES[w] for w in words if w in _ARM32_NAMES}
    if {"fphp", "asimdhp"} <= words:
        found.add("fp16")
    return found


def normalise_x86(words: set[str]) -> set[str]:
    """x86 flags words → normalised names."""
    return {_X86_NAMES[w] for w in words if w in _X86_NAMES}
