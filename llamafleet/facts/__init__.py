"""pyinfra facts llamafleet reads from each device (all of them never fail; see each class).

from llamafleet.facts import CpuProfile, MemInfo, DevicePlatform, CompilerInfo, CompilerAccepts, RpcPortRecord, CpuRefusals
host.get_fact(CpuProfile)["threads"]
"""

from .compiler import CompilerAccepts, CompilerInfo, compiler_accepts
from .cpu import CpuProfile
from .device import DevicePlatform
from .memory import MemInfo
from .ports import RpcPortRecord
from .refusals import CpuRefusals

__all__ = ["CompilerAccepts", "CompilerInfo", "CpuProfile", "CpuRefusals", "DevicePlatform", "MemInfo", "RpcPortRecord",
           "compiler_accepts"]
