"""End-to-end searches of the NATS-Bench size space: DARTS weights widths, IS-DARTS shrinks them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nasc.dsl import load_space
from nasc.runtime.cli.commands import main

NATS = str(Path(__file__).resolve().parents[3] / "spaces" / "nats_sss.nas")
TINY = [
    "--data", "digits", "--subset", "32", "-D", "size=8", "--epochs", "2",
    "--batch-size", "16", "--quiet", "--seed", "1",
]  # fmt: skip
STRATEGIES = {
    "darts-1st": [],
    "isdarts": ["--shrink-steps", "1", "--shrink-interval", "1", "--measure-samples", "16"],
}


@pytest.mark.slow
@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_nats_sss_search_finds_widths_and_exports_a_fixed_network(
    strategy, tmp_path, capsys, catalog
):
    """`nasc search spaces/nats_sss.nas` finds one width per layer, names them, and writes a
    fixed `.nas` network of those widths that checks."""
    runs = tmp_path / "runs"
    args = ["search", NATS, "--strategy", strategy, *TINY, *STRATEGIES[strategy]]
    assert main([*args, "--runs-dir", str(runs)]) == 0
    [run] = runs.iterdir()
    genotype = json.loads((run / "genotype.json").read_text())["cells"]
    assert sorted(genotype) == ["C1", "C2", "C3", "C4", "C5"]
    widths = {label: edges["x->block"] for label, edges in genotype.items()}
    assert all(len(kept) == 1 for kept in widths.values())
    blocks = " ".join(f"{label}={kept[0]}" for label, kept in widths.items())
    assert blocks in capsys.readouterr().out
    fixed = load_space(str(run / "arch.nas"), catalog=catalog)
    assert fixed.is_fixed and not fixed.width_choices
    values = {param.name: param.default.value for param in fixed.network.params}
    assert all(values[label] == int(kept[0]) for label, kept in widths.items())
    assert main(["check", str(run / "arch.nas")]) == 0
