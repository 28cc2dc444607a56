"""CPU facts → llama.cpp build flags, as pure functions (no pyinfra import here).

- profile.parse_cpuinfo(text, uname_m) → CpuProfile (cores by name, features, big cores, march)
- flags.build_flags(profile, compiler, overrides..., accepts=None) → BuildFlags (CMake args)
- table.table_for(extra_yaml) → CpuTable: the data both rest on (table.yaml: MIDR cores,
  -mtune support per compiler, the -march/x86 ladders), with a user's rows merged in.
- meminfo.parse_meminfo, device.parse_platform, compilers.parse_version_output: the other
  device facts' parsers.
"""
