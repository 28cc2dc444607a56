"""Read a GGUF model's metadata (the key/value header) without loading its tensors.

Only what llamafleet asks of a model on the controller: does it carry a chat template
(`tokenizer.chat_template`), and what is its architecture. The layout is GGUF v2/v3 as written
in ggml's docs/gguf.md: magic "GGUF", uint32 version, uint64 tensor count, uint64 key/value
count, then each pair as (string key, uint32 value type, value); strings are a uint64 length and
UTF-8 bytes, arrays a uint32 element type, a uint64 count and the elements. Everything is
little-endian. Arrays (the vocabulary: 262k strings for Gemma 3) are skipped, not kept.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

MAGIC = b"GGUF"
CHAT_TEMPLATE_KEY = "tokenizer.chat_template"

# GGUF value types (gguf.md, "gguf_metadata_value_type") → struct format of a scalar.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING = 8
_ARRAY = 9
# A key or a scalar string longer than this is a corrupt file, not a model.
_MAX_STRING = 64 * 1024 * 1024


class GgufError(ValueError):
    """The file is not a GGUF model this reader understands."""


def _read(handle: BinaryIO, size: int) -> bytes:
    data = handle.read(size)
    if len(data) != size:
        raise GgufError("the file ends inside its metadata")
    return data


def _unpack(handle: BinaryIO, fmt: str):
    return struct.unpack(fmt, _read(handle, struct.calcsize(fmt)))[0]


def _string(handle: BinaryIO) -> str:
    length = _unpack(handle, "<Q")
    if length > _MAX_STRING:
        raise GgufError(f"a metadata string claims {length} bytes")
    return _read(handle, length).decode("utf-8", errors="replace")


def _skip_string(handle: BinaryIO) -> None:
    handle.seek(_unpack(handle, "<Q"), 1)


def _value(handle: BinaryIO, kind: int):
    """A scalar or string value; arrays are skipped and read as None."""
    if kind in _SCALARS:
        return _unpack(handle, _SCALARS[kind])
    if kind == _STRING:
        return _string(handle)
    if kind == _ARRAY:
        element, count = _unpack(handle, "<I"), _unpack(handle, "<Q")
        if element in _SCALARS:
            handle.seek(struct.calcsize(_SCALARS[element]) * count, 1)
        elif element == _STRING:
            for _ in range(count):
                _skip_string(handle)
        else:  # arrays of arrays: walk them
            for _ in range(count):
                _value(handle, element)
        return None
    raise GgufError(f"unknown metadata value type {kind}")


def read_metadata(path: str | Path) -> dict[str, object]:
    """Every scalar and string key of the model's header (array keys map to None)."""
    with open(path, "rb") as handle:
        if _read(handle, 4) != MAGIC:
            raise GgufError(f"{path}: not a GGUF file (no GGUF magic)")
        version = _unpack(handle, "<I")
        if version not in (2, 3):
            raise GgufError(f"{path}: GGUF version {version} (this reader knows 2 and 3)")
        _tensors, pairs = _unpack(handle, "<Q"), _unpack(handle, "<Q")
        metadata: dict[str, object] = {}
        for _ in range(pairs):
            key = _string(handle)
            metadata[key] = _value(handle, _unpack(handle, "<I"))
        return metadata


def has_chat_template(path: str | Path) -> bool:
    """True when the model carries its own chat template."""
    template = read_metadata(path).get(CHAT_TEMPLATE_KEY)
    return isinstance(template, str) and bool(template.strip())
