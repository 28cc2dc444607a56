"""Which chat template llama-server uses, decided once from `llama_chat_template`.

llama-server formats `/v1/chat/completions` messages with the model's own template
(`tokenizer.chat_template` in the GGUF). A model without one falls back to ChatML silently, and a
model that never saw ChatML answers with its tokens (`<|im_end|>...`): so a model without a
template needs one set, and `check`/`doctor` say so. The tunable names a template shipped with
llamafleet (`templates/chat/<name>.jinja`, e.g. "gemma3") or a Jinja file on the controller; it
is uploaded next to the model and passed as `--chat-template-file`. A file, not llama.cpp's
built-in names: with Jinja on (llama-server's default) `--chat-template gemma` is read as a
template whose text is the word "gemma".
"""

from __future__ import annotations

from pathlib import Path

from llamafleet.gguf_meta import GgufError, has_chat_template
from llamafleet.templates import TEMPLATES

# Shipped chat templates: templates/chat/<name>.jinja. They are llama-server's Jinja, uploaded as
# they are (llamafleet renders none of them).
SHIPPED = TEMPLATES / "chat"
DEVICE_NAME = "chat-template.jinja"


def shipped_names() -> list[str]:
    return sorted(path.stem for path in SHIPPED.glob("*.jinja"))


def template_source(value: str | None) -> Path | None:
    """The controller file a `llama_chat_template` value stands for (None: the model's own).

    A bare name is a shipped template; anything else is a path on the controller.
    """
    if not value:
        return None
    shipped = SHIPPED / f"{value}.jinja"
    if "/" not in value and shipped.is_file():
        return shipped
    return Path(value).expanduser()


def problem(value: str | None) -> str | None:
    """Why a `llama_chat_template` value cannot be used (None when it can)."""
    if not value:
        return None
    source = template_source(value)
    if source is not None and source.is_file():
        return None
    if "/" not in value and not value.endswith(".jinja"):
        return f"{value!r} is neither a shipped template ({', '.join(shipped_names())}) nor a file"
    return f"{value}: no such file on the controller"


def missing_template_advice(model_file: str | None, value: str | None) -> str | None:
    """A warning when the model on the controller has no chat template and none is set.

    Models given by URL only are not on the controller: nothing to read, no warning.
    """
    if value or not model_file:
        return None
    try:
        if has_chat_template(Path(model_file).expanduser()):
            return None
    except (OSError, GgufError):
        return None  # check reports a missing model file; an unreadable header is not ours to judge
    return (
        f"{Path(model_file).name} carries no chat template: llama-server falls back to ChatML and chat "
        f"clients get template tokens back; set llama_chat_template (shipped: {', '.join(shipped_names())}) "
        "or a Jinja file"
    )
