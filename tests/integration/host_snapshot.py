"""What a lab host looks like, for comparing it before a deploy and after `llamafleet remove`.

`snapshot(lab_exec, host)` runs one shell script on the host as root (the lab's
`lab_exec(name, cmd, root=True)`; on a phone too) and returns a dict of plain, sorted data.
Exactly these are compared (each key of the dict):

- "kind": "phone" (Termux's $PREFIX exists: /data/data/com.termux/files/usr) or "linux".
- "files": every entry under the paths llamafleet writes, as "<path>/<relative>  <type>[ -> <link
  target>]" (type as find's %y: f file, d directory, l link), the path itself included; a path
  that is not there is "<path>  absent". Phones: <home>/llamafleet (the base), $PREFIX/var/service,
  $PREFIX/var/log/sv, <home>/.termux/boot, $PREFIX/etc/ssh/sshd_config.d (sshd's drop-ins). Linux: /opt/llamafleet (the base), /etc/systemd/system,
  /etc/sv, /etc/service, /etc/sysctl.d, /etc/iptables, /etc/nftables.d, /etc/llamafleet,
  /var/log/llamafleet. `bases=` names other bases (a `llamafleet_dir` of the inventory).
- "authorized_keys": the lines of <home>/.ssh/authorized_keys (phone: the Termux home; Linux:
  /root, the lab's SSH user; `home=` names another, /home/alice on a host reached as alice),
  in file order; None when the file is not there.
- "processes": the command names (/proc/<pid>/stat) of the host's processes, sorted, one entry
  per process; left out: pid 1 (the lab's init, or a systemd host's systemd), the lab's sshd
  (names sshd and sshd-session: the one the phone's owner started, and a session's), and this
  snapshot's own shell and everything it started.
- "iptables": `iptables -w -S` (the filter table, every chain) line by line; None without iptables.
- "nftables": `nft list ruleset`, without handles ("# handle N") and with counters reduced to
  "counter" (their packets and bytes change with traffic), blank lines dropped; None without nft.
- "ufw": `ufw show added` line by line (rules added, active or not); None without ufw.
- "firewalld": for every zone, "<zone> runtime|permanent: <rich rule>"; None when firewall-cmd
  is not installed or firewalld is not running.
- "users", "groups": the names in /etc/passwd and /etc/group, sorted.

What `llamafleet remove` leaves by design, so a comparison with the host before its first
deploy may show it: packages the deploy installed and their own files (runit's /etc/sv and
/etc/service entries, termux-services' runsvdir process, started by the package's profile script
too), and empty directories llamafleet made where a user's may be (/etc/iptables,
/etc/nftables.d, ~/.termux/boot). Not compared: sysctl values (the drop-in goes; its values stay
until the next boot), package lists, journald's logs.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable

TERMUX_PREFIX = "/data/data/com.termux/files/usr"
TERMUX_HOME = "/data/data/com.termux/files/home"
PHONE_PATHS = (f"{TERMUX_HOME}/llamafleet", f"{TERMUX_PREFIX}/var/service", f"{TERMUX_PREFIX}/var/log/sv",
               f"{TERMUX_HOME}/.termux/boot", f"{TERMUX_PREFIX}/etc/ssh/sshd_config.d")
LINUX_PATHS = ("/opt/llamafleet", "/etc/systemd/system", "/etc/sv", "/etc/service", "/etc/sysctl.d",
               "/etc/iptables", "/etc/nftables.d", "/etc/llamafleet", "/var/log/llamafleet")
LINUX_HOME = "/root"
LAB_PROCESSES = ("sshd", "sshd-session")
SECTION = "@@"


def _quote(path: str) -> str:
    return "'" + path.replace("'", "'\\''") + "'"


def _listing(paths: Iterable[str]) -> str:
    lines = []
    for path in paths:
        quoted = _quote(path)
        lines.append(f"echo {_quote(SECTION + 'files ' + path)}; if [ -e {quoted} ] || [ -L {quoted} ]; "
                     f"then find -H {quoted} -printf '%y %P\\t%l\\n' 2>/dev/null; else echo absent; fi")
    return "\n".join(lines)


def _tool(name: str, command: str) -> str:
    """A section with `command`'s output, or "missing" when the tool is not installed."""
    return (f"echo {SECTION}{name}; if command -v {command.split()[0]} >/dev/null 2>&1; then {command} 2>/dev/null; "
            f"else echo {SECTION}missing; fi")


def script(bases: Iterable[str] = (), home: str | None = None) -> str:
    """The shell script a snapshot runs (as root, POSIX sh)."""
    extra = list(bases)
    phone = _listing([*PHONE_PATHS, *extra])
    linux = _listing([*LINUX_PATHS, *extra])
    firewalld = (
        f"echo {SECTION}firewalld; if command -v firewall-cmd >/dev/null 2>&1 && firewall-cmd --state >/dev/null 2>&1; "
        "then for zone in $(firewall-cmd --get-zones); do "
        "firewall-cmd --zone=\"$zone\" --list-rich-rules | sed \"s/^/$zone runtime: /\"; "
        "firewall-cmd --permanent --zone=\"$zone\" --list-rich-rules | sed \"s/^/$zone permanent: /\"; done; "
        f"else echo {SECTION}missing; fi"
    )
    return "\n".join([
        "export LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        f"if [ -d {TERMUX_PREFIX} ]; then echo {SECTION}kind phone",
        phone,
        f"keys={_quote(home or TERMUX_HOME)}/.ssh/authorized_keys",
        f"else echo {SECTION}kind linux",
        linux,
        f"keys={_quote(home or LINUX_HOME)}/.ssh/authorized_keys",
        "fi",
        f"echo {SECTION}authorized_keys; if [ -f \"$keys\" ]; then cat \"$keys\"; else echo {SECTION}missing; fi",
        f"echo \"{SECTION}self $$\"",
        f"echo {SECTION}processes; cat /proc/[0-9]*/stat 2>/dev/null; echo",
        _tool("iptables", "iptables -w -S"),
        _tool("nftables", "nft list ruleset"),
        _tool("ufw", "ufw show added"),
        firewalld,
        f"echo {SECTION}users; cut -d: -f1 /etc/passwd",
        f"echo {SECTION}groups; cut -d: -f1 /etc/group",
    ])


_STAT = re.compile(r"^(\d+) \((.*)\) (\S) (\d+)")


def processes(stat_lines: Iterable[str], self_pid: int | None) -> list[str]:
    """Command names from /proc/<pid>/stat lines, without pid 1, the lab's sshd, and `self_pid`
    with every process under it."""
    table = {}
    for line in stat_lines:
        match = _STAT.match(line.strip())
        if match:
            table[int(match.group(1))] = (match.group(2), int(match.group(4)))

    def under_self(pid: int) -> bool:
        seen = set()
        while pid in table and pid not in seen:
            if pid == self_pid:
                return True
            seen.add(pid)
            pid = table[pid][1]
        return pid == self_pid

    return sorted(name for pid, (name, _) in table.items()
                  if pid != 1 and name not in LAB_PROCESSES and not under_self(pid))


_HANDLE = re.compile(r"\s*# handle \d+\s*$")
_COUNTER = re.compile(r"\bcounter packets \d+ bytes \d+")


def nft_lines(lines: Iterable[str]) -> list[str]:
    """`nft list ruleset` without handles and counts, blank lines dropped."""
    kept = []
    for line in lines:
        line = _COUNTER.sub("counter", _HANDLE.sub("", line)).rstrip()
        if line.strip():
            kept.append(line)
    return kept


def _files(section: str, lines: list[str]) -> list[str]:
    path = section[len("files "):]
    entries = []
    for line in lines:
        if line == "absent":
            entries.append(f"{path}  absent")
            continue
        kind, _, rest = line.partition(" ")
        relative, _, target = rest.partition("\t")
        name = f"{path}/{relative}" if relative else path
        entries.append(f"{name}  {kind}" + (f" -> {target}" if target else ""))
    return entries


def parse(output: str) -> dict:
    """The snapshot's dict from the script's output (see the module's docstring)."""
    sections: list[tuple[str, list[str]]] = []
    for line in output.splitlines():
        if line.startswith(SECTION):
            sections.append((line[len(SECTION):], []))
        elif sections:
            sections[-1][1].append(line)
    found: dict = {"kind": None, "files": [], "authorized_keys": None, "processes": [], "iptables": None,
                   "nftables": None, "ufw": None, "firewalld": None, "users": [], "groups": []}
    self_pid = None
    for index, (name, lines) in enumerate(sections):
        missing = index + 1 < len(sections) and sections[index + 1][0] == "missing"
        if name.startswith("kind "):
            found["kind"] = name.split()[1]
        elif name.startswith("files "):
            found["files"] += _files(name, lines)
        elif name.startswith("self "):
            self_pid = int(name.split()[1])
        elif name == "processes":
            found["processes"] = processes(lines, self_pid)
        elif name == "nftables":
            found[name] = None if missing else nft_lines(lines)
        elif name in ("authorized_keys", "iptables", "ufw", "firewalld"):
            found[name] = None if missing else [line.rstrip() for line in lines if line.strip()]
        elif name in ("users", "groups"):
            found[name] = sorted(line.strip() for line in lines if line.strip())
    found["files"].sort()
    return found


def snapshot(lab_exec: Callable, host: str, bases: Iterable[str] = (), home: str | None = None) -> dict:
    """The host as the module's docstring describes it, read as root through `lab_exec`."""
    result = lab_exec(host, script(bases, home), root=True)
    if result.returncode != 0 and not result.stdout:
        raise RuntimeError(f"{host}: snapshot failed: {result.stderr.strip()}")
    return parse(result.stdout)


def differences(before: dict, after: dict) -> dict:
    """For each key whose value differs: what is only in `before` ("gone") and only in `after`
    ("new"), counting repeats (two runsv processes are not one)."""
    changed = {}
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if isinstance(old, list) and isinstance(new, list):
            gone, added = Counter(old) - Counter(new), Counter(new) - Counter(old)
            changed[key] = {"gone": sorted(gone.elements()), "new": sorted(added.elements())}
        else:
            changed[key] = {"gone": old, "new": new}
    return changed
