"""Readiness checks run on a device: are the workers reachable, is llama-server healthy.

Each is an operation that reads a fact first and does nothing when the answer is already yes;
otherwise it waits, bounded, and fails naming what is still missing.

The shell probes below are the one definition of how llamafleet looks at sockets on a device,
shared by the deploy, `llamafleet diagnose` and the testinfra suite. They must work on a phone:
Android 10+ denies apps /proc/net and netlink sock_diag, so `ss`, `netstat` and `ip` fail in
Termux. What a phone has: bash (/dev/tcp), coreutils `timeout`, grep, and /proc/<pid>/cmdline of
its own processes. `ss` is used only where it can be shown to see sockets at all.
"""

from __future__ import annotations

import re
import shlex

from pyinfra import host
from pyinfra.api import FactBase, QuoteString, StringCommand, operation

from llamafleet.plan import host_port, is_loopback

# ggml-rpc's HELLO (protocol v7): command byte 14, a 64-bit little-endian size, the request
# (24 bytes of transport capabilities); the answer is a 64-bit size, then major, minor, patch,
# padding and the server's 24 capability bytes.
RPC_CMD_HELLO = 14
RPC_CAPS_SIZE = 24

# What connect_probe prints; "accepted" and "timeout" both mean something listens when the
# address is local (a closed local port answers at once with a reset).
ACCEPTED, REFUSED, TIMEOUT, ERROR = "accepted", "refused", "timeout", "error"

# established_to's exit status when ss cannot see sockets here (missing, or denied on Android).
SS_UNUSABLE = 3

_ADDRESS = re.compile(r"[A-Za-z0-9._:%\[\]-]+")


def rpc_hello_request() -> bytes:
    """The bytes of a HELLO request."""
    return bytes([RPC_CMD_HELLO]) + RPC_CAPS_SIZE.to_bytes(8, "little") + bytes(RPC_CAPS_SIZE)


# The answer's length: its 64-bit size, then major, minor, patch, padding and the capabilities.
RPC_HELLO_ANSWER_SIZE = 8 + 4 + RPC_CAPS_SIZE


def rpc_hello_printf() -> str:
    """The HELLO request as a printf format of octal escapes (sh's printf writes NUL bytes)."""
    return "".join(f"\\{byte:03o}" for byte in rpc_hello_request())


def _dev_tcp(address: str, port: int) -> str:
    """bash's /dev/tcp path for address:port (refusing anything that is not a plain address)."""
    if not _ADDRESS.fullmatch(address):
        raise ValueError(f"not an address: {address!r}")
    return f"/dev/tcp/{address.strip('[]')}/{int(port)}"


def connect_probe(address: str, port: int, seconds: int = 3) -> str:
    """A shell command printing how a TCP connect from this host to address:port ends:
    "accepted", "refused" (a reset: nothing listens there), "timeout" (no answer within
    `seconds`), or "error <reason>" (no route, unknown name...).

    On a local address a closed port is refused at once, so "accepted" and "timeout" both mean
    something listens: an rpc-server busy with its client (backlog 1) leaves a new connection
    queued or drops its SYN. The connection is closed at once; nothing is sent.
    """
    inner = shlex.quote(f"exec 3<>{_dev_tcp(address, port)}")
    return (
        f"r=$(LC_ALL=C timeout {int(seconds)} bash -c {inner} 2>&1); "
        f"case $? in 0) echo {ACCEPTED};; 124) echo {TIMEOUT};; "
        f'*) case $r in *refused*) echo {REFUSED};; *) echo "{ERROR} ${{r##*: }}";; esac;; esac'
    )


def established_to(address: str, port: int) -> str:
    """A shell command printing this host's established TCP connections to address:port (one
    `ss` line each, as a client: the peer is address:port); exit status SS_UNUSABLE when `ss`
    cannot see sockets here.

    `ss` counts only when it lists at least one listening TCP socket: a host we reach over SSH
    always has one (sshd's). A missing `ss`, or one Android denies (it prints nothing, or only
    an error, and may still exit 0), therefore never passes for "no connections" nor for
    "established".
    """
    peer = shlex.quote(host_port(address.strip("[]"), int(port)))
    return (
        "(if ss -Htln 2>/dev/null | grep -q .; then "
        f"ss -Htn state established 2>/dev/null | awk -v peer={peer} '$NF == peer'; "
        f"else exit {SS_UNUSABLE}; fi)"
    )


def rpc_hello_probe(address: str, port: int, seconds: int = 3) -> str:
    """A shell command that connects to an rpc-server at address:port, sends HELLO and prints
    "answered" (it is idle: no client holds it), "closed" (it hung up), "silent" (connected, no
    answer within `seconds`: it is serving another client, one at a time) or "unreachable"
    (the connection failed or timed out). For hosts where `ss` cannot show who is connected."""
    request = rpc_hello_printf()
    inner = shlex.quote(
        f"exec 3<>{_dev_tcp(address, port)} || exit 2; echo connected; printf '{request}' >&3; "
        "n=$(head -c 1 <&3 | wc -c); if [ $n -gt 0 ]; then echo answered; else echo closed; fi"
    )
    return (
        f"r=$(LC_ALL=C timeout {int(seconds)} bash -c {inner} 2>/dev/null); "
        'case $r in *answered*) echo answered;; *closed*) echo closed;; '
        "*connected*) echo silent;; *) echo unreachable;; esac"
    )


def process_argvs(binary: str) -> str:
    """A shell command printing, for each process whose program is named `binary`, its pid
    and arguments, tab-separated, one process a line (from /proc/<pid>/cmdline: a phone can
    read its own processes' there, and every host runs its services as such)."""
    name = shlex.quote(binary)
    return (
        "t=$(printf '\\t'); "
        f"for f in $(grep -lsF -- {name} /proc/[0-9]*/cmdline); do "
        "a=$(tr '\\000' '\\t' < \"$f\" 2>/dev/null) || continue; a0=${a%%\"$t\"*}; "
        f'[ "${{a0##*/}}" = {name} ] || continue; p=${{f#/proc/}}; '
        "printf '%s\\t%s\\n' \"${p%/cmdline}\" \"$a\"; done; true"
    )


def tcp_reachable(address: str, port: int) -> str:
    """A shell test: true when address:port is reachable from this host.

    An rpc-server serves one client at a time and listens with a backlog of 1: while
    llama-server holds its connection, a probe connection is never accepted and stays queued,
    and the next probe's SYN is dropped. So an established connection to the endpoint counts
    as proof and no probe is made; only otherwise does bash's /dev/tcp (no netcat needed, which
    Termux lacks by default) try to connect.

    Where `ss` is missing or denied (a phone), established_to finds nothing, never a false
    "established", and the connect probe decides. On a loopback address (a tunnel's end, a
    worker looking at itself) a timeout also counts, as a closed port there is refused at once;
    elsewhere a timeout may be a firewall dropping the SYN, so only an accepted connection does.
    """
    listening = f"-e ^{ACCEPTED} -e ^{TIMEOUT}" if is_loopback(address.strip("[]")) else f"-e ^{ACCEPTED}"
    return (
        f"{{ {established_to(address, port)} | grep -q . || "
        f"{{ {connect_probe(address, port)}; }} | grep -q {listening}; }}"
    )


class UnreachableEndpoints(FactBase):
    """
    The (name, "address:port") endpoints that refuse a TCP connection from this host.

    .. code:: python

        ["phone2 (127.0.0.1:50053)"]
    """

    def command(self, endpoints: list[tuple[str, str, int]]) -> str:
        checks = [
            f"{tcp_reachable(address, port)} || echo {shlex.quote(f'{name} ({address}:{port})')}"
            for name, address, port in endpoints
        ]
        return "; ".join(checks) + "; true"

    def process(self, output):
        return [line.strip() for line in output if line.strip()]


@operation()
def endpoints_reachable(endpoints: list[tuple[str, str, int]], timeout: int = 120):
    """
    Wait (at most `timeout` s) until every endpoint accepts TCP connections; fail naming the
    ones that do not.

    + endpoints: (name, address, port) triples
    + timeout: seconds to wait in all
    """
    missing = host.get_fact(UnreachableEndpoints, endpoints=endpoints)
    if not missing:
        host.noop(f"{len(endpoints)} endpoints answer")
        return
    probes = " ".join(
        f"{tcp_reachable(address, port)} || missing=\"$missing {name}({address}:{port})\";"
        for name, address, port in endpoints
    )
    script = (
        f"waited=0; while :; do missing=''; {probes} "
        f'[ -z "$missing" ] && exit 0; '
        f'if [ $waited -ge {timeout} ]; then echo "{host.name}: still unreachable after {timeout}s:$missing" >&2; exit 1; fi; '
        "sleep 2; waited=$((waited+2)); done"
    )
    yield StringCommand("bash", "-c", QuoteString(script))


class HttpHealth(FactBase):
    """True when GET <url> answers with {"status":"ok"} (llama-server's /health)."""

    def command(self, url: str) -> str:
        return f"curl -fsS --max-time 5 {shlex.quote(url)} 2>/dev/null || true"

    def process(self, output):
        return '"ok"' in "".join(output)


@operation()
def http_healthy(url: str, timeout: int = 300):
    """
    Wait (at most `timeout` s) for `url` to report status ok; fail with the last answer.

    + url: the health URL (llama-server: /health answers 503 while the model loads)
    + timeout: seconds to wait
    """
    if host.get_fact(HttpHealth, url=url):
        host.noop(f"{url} is healthy")
        return
    script = (
        f"waited=0; until curl -fsS --max-time 5 {shlex.quote(url)} 2>/dev/null | grep -q '\"ok\"'; do "
        f'if [ $waited -ge {timeout} ]; then echo "{host.name}: {url} not healthy after {timeout}s:" >&2; '
        f"curl -sS --max-time 5 {shlex.quote(url)} >&2; exit 1; fi; sleep 2; waited=$((waited+2)); done"
    )
    yield StringCommand("sh", "-c", QuoteString(script))
