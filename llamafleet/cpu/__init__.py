"""CPU facts → llama.cpp build flags, as pure functions (no pyinfra import here).

- profile.parse_cpuinfo(text, uname_m) → CpuProfile (cores by name, features, big cores, march)
- flags.build_flags(profile, compiler, overrides..., accepts=None) → BuildFlags (CMake args)
- meminfo.parse_meminfo, device.parse_platform, compilers.parse_version_output: the other
  device facts' parsers.
"""
