"""The chat template decision: GGUF metadata read on the controller, the tunable checked, the
warning when a model has none, and the shipped Gemma 3 template's turns."""

from __future__ import annotations

import struct
from pathlib import Path

import jinja2
import pytest

from llamafleet.gguf_meta import CHAT_TEMPLATE_KEY, GgufError, has_chat_template, read_metadata
from llamafleet.serving import chat_template


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def write_gguf(path: Path, pairs: list[tuple[str, int, bytes]], version: int = 3) -> Path:
    """A GGUF header with the given (key, type, encoded value) pairs and no tensors."""
    body = b"".join(_string(key) + struct.pack("<I", kind) + value for key, kind, value in pairs)
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", version, 0, len(pairs)) + body)
    return path


VOCAB = struct.pack("<IQ", 8, 3) + _string("<pad>") + _string("<eos>") + _string("hello")
SCORES = struct.pack("<IQ", 6, 3) + struct.pack("<3f", 0.0, 0.0, -1.5)


def model(tmp_path: Path, template: str | None) -> Path:
    pairs = [
        ("general.architecture", 8, _string("gemma3")),
        ("gemma3.block_count", 4, struct.pack("<I", 18)),
        ("tokenizer.ggml.tokens", 9, VOCAB),
        ("tokenizer.ggml.scores", 9, SCORES),
        ("tokenizer.ggml.add_bos_token", 7, struct.pack("<?", True)),
    ]
    if template is not None:
        pairs.append((CHAT_TEMPLATE_KEY, 8, _string(template)))
    return write_gguf(tmp_path / "model.gguf", pairs)


def test_metadata_after_arrays_is_read(tmp_path):
    metadata = read_metadata(model(tmp_path, "{{ messages }}"))
    assert metadata["general.architecture"] == "gemma3"
    assert metadata["gemma3.block_count"] == 18
    assert metadata["tokenizer.ggml.tokens"] is None  # arrays are skipped, not kept
    assert metadata["tokenizer.ggml.add_bos_token"] is True
    assert metadata[CHAT_TEMPLATE_KEY] == "{{ messages }}"


def test_a_model_with_and_without_a_template(tmp_path):
    assert has_chat_template(model(tmp_path, "{{ messages }}"))
    assert not has_chat_template(model(tmp_path, None))
    assert not has_chat_template(model(tmp_path, "  "))


@pytest.mark.parametrize(
    "data, message",
    [(b"GGML" + bytes(20), "no GGUF magic"), (b"GGUF" + struct.pack("<I", 9) + bytes(16), "version 9"),
     (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + _string("key"), "ends inside")],
)
def test_not_a_model_is_an_error(tmp_path, data, message):
    path = tmp_path / "x.gguf"
    path.write_bytes(data)
    with pytest.raises(GgufError, match=message):
        read_metadata(path)


def test_a_bare_name_is_a_shipped_template_and_anything_else_a_file(tmp_path):
    assert "gemma3" in chat_template.shipped_names()
    assert chat_template.template_source("gemma3") == chat_template.SHIPPED / "gemma3.jinja"
    assert chat_template.template_source(None) is None
    own = tmp_path / "mine.jinja"
    own.write_text("{{ messages }}")
    assert chat_template.template_source(str(own)) == own
    assert chat_template.problem("gemma3") is None and chat_template.problem(str(own)) is None
    assert "neither a shipped template" in chat_template.problem("gemma9")
    assert "no such file" in chat_template.problem(str(tmp_path / "missing.jinja"))


def test_the_warning_only_for_a_local_model_without_a_template(tmp_path):
    bare = model(tmp_path, None)
    advice = chat_template.missing_template_advice(str(bare), None)
    assert advice and "no chat template" in advice and "gemma3" in advice
    assert chat_template.missing_template_advice(str(bare), "gemma3") is None
    assert chat_template.missing_template_advice(None, None) is None  # model_url only: nothing to read
    assert chat_template.missing_template_advice(str(model(tmp_path, "{{ x }}")), None) is None


def test_gemma3_turns_as_the_model_was_trained():
    template = jinja2.Environment().from_string((chat_template.SHIPPED / "gemma3.jinja").read_text())
    rendered = template.render(
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                  {"role": "assistant", "content": "Hello "}, {"role": "user", "content": "Colours?"}],
        add_generation_prompt=True,
    )
    assert rendered == (
        "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n"
        "<start_of_turn>user\nColours?<end_of_turn>\n<start_of_turn>model\n"
    )
    assert "<|im_start|>" not in rendered
