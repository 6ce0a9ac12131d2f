"""Tests of examples/rl_encoder.py: an actor-critic agent on MiniGrid pixels whose encoder is a
supernet that IS-DARTS shrinks while the agent trains."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from nasc.compiler import CompileOptions, catalog, compile_space
from nasc.dsl import parse_space

EXAMPLE = Path(__file__).parents[2] / "examples" / "rl_encoder.py"


def load_example():
    spec = importlib.util.spec_from_file_location("rl_encoder", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_a_few_updates_search_and_export_the_encoder(tmp_path, capsys):
    """Six A2C updates with four shrink steps leave one op per edge and export a fixed encoder
    whose weights load into the network its arch.nas compiles to."""
    example = load_example()
    out = tmp_path / "rl"
    argv = ["--updates", "6", "--shrink-every", "1", "--envs", "2", "--rollout", "4"]
    result = example.main([*argv, "--out", str(out)])
    printed = capsys.readouterr().out
    assert printed.count("shrink step ") == 4 and "shrink step 4/4" in printed
    cells = result["genotype"]["cells"]["enc_cell"]
    assert len(cells) == 6 and all(len(ops) == 1 for ops in cells.values())
    assert result["nb201"].count("~") == 6
    assert json.loads((out / "result.json").read_text())["nb201"] == result["nb201"]
    fixed = parse_space((out / "arch.nas").read_text(), catalog=catalog())
    assert fixed.is_fixed
    network = compile_space(fixed, options=CompileOptions(track_running_stats=False))
    network.load_state_dict(torch.load(out / "encoder.pt"))
    assert network.num_parameters() == result["encoder_parameters"]
    assert result["encoder_parameters"] < result["supernet_parameters"]
    features = network(torch.rand(2, 3, 28, 28))
    assert features.shape == (2, 32)
