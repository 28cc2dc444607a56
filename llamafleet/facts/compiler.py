"""Compiler facts: which C compiler a device has, and whether it accepts given flags."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pyinfra.api import FactBase, QuoteString, StringCommand

from llamafleet.cpu.compilers import VERSION_MARKER, parse_compiler_probe

# $1.. = candidate compilers, first found wins. The C++ driver is derived from the C one's
# name (clang-18 → clang++-18, aarch64-linux-gnu-gcc → aarch64-linux-gnu-g++, cc → c++).
_INFO_SCRIPT = f"""
for c in "$@"; do
  p=$(command -v "$c" 2>/dev/null) || continue
  echo "path=$p"
  case "$c" in
    *clang*) x=$(echo "$c" | sed 's/clang/clang++/') ;;
    *gcc*) x=$(echo "$c" | sed 's/gcc/g++/') ;;
    cc) x=c++ ;;
    *) x= ;;
  esac
  if [ -n "$x" ]; then x=$(command -v "$x" 2>/dev/null) && echo "cxx=$x"; fi
  echo "{VERSION_MARKER}"
  "$p" --version 2>&1 | head -n 3
  exit 0
done
exit 0
""".strip()

# $1 = compiler, $2.. = flags. Runs in $TMPDIR: on Termux /tmp does not exist and the
# compiler's own temporary files must go somewhere writable.
_ACCEPTS_SCRIPT = """
d="${TMPDIR:-/tmp}"
cd "$d" 2>/dev/null || cd "$HOME" || exit 0
p=$(command -v "$1" 2>/dev/null) || { echo missing; exit 0; }
shift
if TMPDIR="$d" "$p" "$@" -c -x c /dev/null -o /dev/null >/dev/null 2>&1; then echo yes; else echo no; fi
""".strip()

DEFAULT_COMPILERS = ("cc", "clang", "gcc")


class CompilerInfo(FactBase[dict | None]):
    """The C compiler llamafleet would build with, or None when there is none:

    .. code:: python

        {"family": "clang", "version": "17.0.6",
         "path": "/data/data/com.termux/files/usr/bin/clang",
         "cxx": "/data/data/com.termux/files/usr/bin/clang++"}

    + compiler: a name or path to look for (group data `llama_compiler`); default: the first of
      cc, clang, gcc.
    """

    def command(self, compiler: str | None = None) -> StringCommand:
        candidates = (compiler,) if compiler else DEFAULT_COMPILERS
        return StringCommand("sh", "-c", QuoteString(_INFO_SCRIPT), "llamafleet", *(QuoteString(c) for c in candidates))

    def process(self, output: list[str]) -> dict | None:
        return parse_compiler_probe([line.strip() for line in output])


class CompilerAccepts(FactBase[bool | None]):
    """Whether the compiler builds an empty C file with these flags:
    `cc <flags> -c -x c /dev/null -o /dev/null`.

    .. code:: python

        True    # accepted
        False   # refused (unknown -march extension, -mtune name, ...)
        None    # no such compiler on the host

    + flags: the compiler flags, a list (each one argument) or one string (split on spaces).
    + compiler: name or path; default cc.
    """

    def command(self, flags: Sequence[str] | str, compiler: str = "cc") -> StringCommand:
        if isinstance(flags, str):
            flags = flags.split()
        return StringCommand(
            "sh",
            "-c",
            QuoteString(_ACCEPTS_SCRIPT),
            "llamafleet",
            QuoteString(compiler),
            *(QuoteString(f) for f in flags),
        )

    def process(self, output: list[str]) -> bool | None:
        answer = next((line.strip() for line in output if line.strip()), "")
        if answer == "missing":
            return None
        return answer == "yes"


def compiler_accepts(host, compiler: str = "cc") -> Callable[[list[str]], bool]:
    """An `accepts(flags)` for llamafleet.cpu.flags.build_flags that asks the device's own
    compiler through the CompilerAccepts fact (a missing compiler accepts nothing)."""

    def accepts(flags: list[str]) -> bool:
        return host.get_fact(CompilerAccepts, flags=list(flags), compiler=compiler) is True

    return accepts
