"""Sizes are MiB (1024 × 1024 bytes), and a model_size_mb that can only be a size in GB is
refused by `llamafleet check` with the figure to write instead."""

from __future__ import annotations

import pytest

from llamafleet.plan import MIB, model_size_from_data
from llamafleet.plan.memory import PLAUSIBLE_MODEL_MB
from llamafleet.settings import BY_NAME

from check_hosts import MASTER, check, linux


def test_a_size_in_gb_is_refused_with_the_mib_to_write():
    assert check(MASTER, linux("board", "198.18.0.31", model_size_mb=1.93)) == [
        "board: model_size_mb: 1.93 is implausible for a model: model_size_mb is in MiB: 1.93 GB is about "
        "1841 (1.93 GiB is 1976); values under 10 are refused, GGUF language models are tens of MiB or more"
    ]


@pytest.mark.parametrize("size, refused", [(0.27, True), (9.99, True), (10, False), (241, False), (40000, False)])
def test_the_threshold_is_ten_mib(size, refused):
    lines = check(MASTER, linux("board", "198.18.0.31", model_size_mb=size))
    assert bool(lines) is refused, lines
    assert PLAUSIBLE_MODEL_MB == 10


def test_the_demo_model_and_a_file_are_measured_in_mib(tmp_path):
    # The demo's model is 253 MB as the README says (253 × 10⁶ bytes): 241 MiB, well above 10.
    model = tmp_path / "m.gguf"
    model.write_bytes(b"\0" * (3 * MIB))
    assert model_size_from_data({"model_file": str(model)}) == 3.0
    assert round(253e6 / MIB) == 241 > PLAUSIBLE_MODEL_MB


@pytest.mark.parametrize("key", ["model_size_mb", "rpc_overhead_mb", "ram_mb"])
def test_each_size_key_says_its_unit(key):
    assert "MiB" in BY_NAME[key].doc

