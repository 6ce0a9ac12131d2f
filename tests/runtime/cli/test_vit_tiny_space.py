"""The small transformer space `spaces/vit_tiny.nas`: it checks and shows, searches its blocks on
the embedded digits, and exports a fixed transformer that the language and the compiler take."""

from __future__ import annotations

import json

import pytest
import torch

from nasc.compiler import CompileOptions, catalog, compile_space
from nasc.dsl import load_space
from nasc.runtime.cli import main

DIGITS = ["-D", "channels=1", "-D", "size=8", "-D", "D=16"]


def test_vit_tiny_checks_and_shows_its_block_choices(capsys):
    """`nasc check` accepts the space and `nasc show --json` counts 4 blocks in each of 2
    decisions: 16 architectures."""
    assert main(["check", "spaces/vit_tiny.nas"]) == 0
    assert "16 architectures" in capsys.readouterr().out
    assert main(["show", "spaces/vit_tiny.nas", "--json", *DIGITS]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["architectures"] == 16 and not facts["fixed"]


@pytest.mark.slow
def test_vit_tiny_searches_on_the_digits_and_exports_a_fixed_transformer(tmp_path, capsys):
    """A tiny IS-DARTS search on 64 digits finds one block per decision; its `arch.nas` is a
    fixed network with those blocks, which compiles and classifies 8x8 grey images."""
    runs = tmp_path / "runs"
    argv = ["search", "spaces/vit_tiny.nas", "--data", "digits", "--subset", "64", *DIGITS]
    argv += ["--epochs", "2", "--shrink-steps", "1", "--shrink-interval", "1"]
    argv += ["--batch-size", "16", "--measure-samples", "16", "--seed", "0", "--quiet"]
    assert main([*argv, "--runs-dir", str(runs)]) == 0
    [run] = runs.iterdir()
    blocks = json.loads((run / "result.json").read_text())["blocks"]
    found = dict(pair.split("=") for pair in blocks.split())
    assert set(found) == {"block_1", "block_2"}
    capsys.readouterr()
    assert main(["check", str(run / "arch.nas")]) == 0
    assert "a fixed" in capsys.readouterr().out
    body = (run / "arch.nas").read_text().split("network vit_tiny")[1]
    assert "choose" not in body
    for op in found.values():  # each found block is placed, with the width D first
        base, _, args = op.partition("(")
        assert f"{base}(D{', ' + args[:-1] if args else ''})" in body
    space = load_space(run / "arch.nas", catalog=catalog())
    net = compile_space(space, {}, CompileOptions(search=False)).eval()
    with torch.no_grad():
        scores = net(torch.randn(2, 1, 8, 8))
    assert scores.shape == (2, 10) and torch.isfinite(scores).all()
