"""The RpcPortRecord fact: the RPC port the deploy recorded on a worker (llamafleet.plan.ports)."""

from __future__ import annotations

from llamafleet.facts.record import DeviceRecord

# The record's lines (templates/llamafleet/etc/rpc-port.j2): `key=value`, `#` comments.
_INTEGERS = ("rpc_port", "rpc_port_base")


def parse_port_record(lines: list[str]) -> dict | None:
    """The record as the plan reads it, or None when there is none or it holds no port."""
    values: dict = {}
    for line in lines:
        key, sep, value = line.strip().partition("=")
        if not sep or key.startswith("#"):
            continue
        if key in _INTEGERS:
            try:
                values[key] = int(value.strip())
            except ValueError:
                continue
        elif key == "since":
            values[key] = value.strip()
    return values if "rpc_port" in values else None


class RpcPortRecord(DeviceRecord):
    """The port recorded on a worker at its deploys, or None (no record: a first deploy, a
    master, or a device whose llamafleet files were removed):

    .. code:: python

        {"rpc_port": 50053, "rpc_port_base": 50052, "since": "2026-12-01T10:00:00Z"}

    + path: the record (llamafleet.layout.Paths.rpc_port_record)
    """

    def process(self, output: list[str]) -> dict | None:
        return parse_port_record(list(output))


def read_port_record(host) -> dict | None:
    """The record of `host`, at the path its layout gives (reads DevicePlatform when the path
    depends on the device's home)."""
    from llamafleet.facts.reading import read_fact
    from llamafleet.layout import device_paths

    return read_fact(host, RpcPortRecord, path=device_paths(host).rpc_port_record)
