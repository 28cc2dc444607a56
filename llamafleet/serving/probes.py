"""Readiness checks run on a device: are the workers reachable, is llama-server healthy.

Each is an operation that reads a fact first and does nothing when the answer is already yes;
otherwise it waits, bounded, and fails naming what is still missing.
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import FactBase, QuoteString, StringCommand, operation


def tcp_reachable(address: str, port: int) -> str:
    """A shell test: true when address:port is reachable from this host.

    An rpc-server serves one client at a time and listens with a backlog of 1: while
    llama-server holds its connection, a probe connection is never accepted and stays queued,
    and the next probe's SYN is dropped. So an established connection to the endpoint counts
    as proof and no probe is made; only otherwise does bash's /dev/tcp (no netcat needed, which
    Termux lacks by default) try to connect.
    """
    established = f"ss -Htn state established 'dst {address}:{port}' 2>/dev/null | grep -q ."
    return f"{{ {established} || timeout 3 bash -c 'exec 3<>/dev/tcp/{address}/{port}' 2>/dev/null; }}"


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
