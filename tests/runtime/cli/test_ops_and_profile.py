"""`--ops` plugins on every command that reads a space (and a run's recorded ones without it), and
`nasc profile`'s tables at the width of a terminal."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from nasc.compiler import OPS
from nasc.runtime.cli import main
from nasc.runtime.cli.profile import render_table

PLUGIN = '''
from torch import nn
from nasc.compiler import register_op

@register_op("plugin_conv_bn")
def build(C_in, C_out, stride, affine, track_running_stats=True):
    """A 3x3 conv and BN, registered by a plugin."""
    return nn.Sequential(
        nn.Conv2d(C_in, C_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(C_out, affine=affine, track_running_stats=track_running_stats),
    )
'''

SPACE = """
ops small = {plugin_conv_bn, skip_connect}
cell c(x) { n1 = x:small  keep 1 per edge  out n1 }
network net(C = 4, classes = 3) { input(1, 8) stem conv3x3_bn(C) c @ C head pool_linear(classes) }
"""


@pytest.fixture
def files(tmp_path):
    """A plugin registering `plugin_conv_bn`, and a space that names it; the op is gone again
    afterwards, so each test loads the plugin itself."""
    OPS.pop("plugin_conv_bn", None)
    plugin = tmp_path / "my_ops.py"
    plugin.write_text(PLUGIN)
    space = tmp_path / "space.nas"
    space.write_text(SPACE)
    yield plugin, space
    OPS.pop("plugin_conv_bn", None)


def test_profile_and_test_take_ops(files, tmp_path, capsys):
    """`nasc profile` and `nasc test` import `--ops` plugins before they read the space, as
    `nasc search` does."""
    plugin, space = files
    out = tmp_path / "table.json"
    profile = ["--min-run-time", "0.001", "--repeats", "1", "-o", str(out)]
    assert main(["profile", str(space), "--ops", str(plugin), *profile]) == 0
    table = json.loads(out.read_text())
    assert set(table["cells"]["c"]["x->n1"]) == {"plugin_conv_bn", "skip_connect"}
    OPS.pop("plugin_conv_bn")
    again = tmp_path / "my_ops_again.py"  # a process imports a plugin once: another file
    again.write_text(PLUGIN)
    assert main(["test", str(space), "--ops", str(again), "--examples", "1"]) == 0
    assert "plugin_conv_bn" in OPS
    assert "Traceback" not in capsys.readouterr().err


def test_export_of_a_run_loads_the_plugins_it_recorded(files, tmp_path, capsys):
    """A search run records its `--ops` plugins in config.json; `nasc export RUN` imports them
    again, so the plugin need not be named twice."""
    plugin, space = files
    run = tmp_path / "run"
    run.mkdir()
    (run / "space.nas").write_text(SPACE)
    genotype = {"cells": {"c": {"x->n1": ["plugin_conv_bn"]}}}
    (run / "genotype.json").write_text(json.dumps(genotype))
    (run / "config.json").write_text(json.dumps({"defines": {}, "plugins": [str(plugin)]}))
    assert main(["export", str(run), "--format", "nas"]) == 0
    assert "x:plugin_conv_bn" in capsys.readouterr().out.replace(" ", "")
    assert "plugin_conv_bn" in OPS


def _table(ops: list[str], edges: list[str]) -> dict:
    """A latency table as `nasc profile` writes it, with made-up times."""
    cells = {
        "normal": {
            edge: {op: 100.0 * (i + 1) + j / 7 for j, op in enumerate(ops)}
            for i, edge in enumerate(edges)
        }
    }
    return {"space": "darts", "batch_size": 1, "device": "cpu", "cells": cells}


@pytest.mark.parametrize("width", [80, 60])
def test_profile_tables_fit_a_narrow_terminal_without_cutting_anything(width):
    """DARTS' eight candidates on a narrow terminal: no line is wider than the terminal, and
    every op name, edge and time is shown whole (split into several tables if need be)."""
    ops = ["none", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3",
           "dil_conv_5x5", "avg_pool_3x3", "max_pool_3x3"]  # fmt: skip
    edges = ["c_k2->n0", "c_k1->n0", "n0->n1", "c_k2->n3", "n2->n3"]
    table = _table(ops, edges)
    buffer = io.StringIO()
    render_table(table, Console(file=buffer, width=width, color_system=None))
    text = buffer.getvalue()
    assert max(len(line) for line in text.splitlines()) <= width
    assert "…" not in text
    for name in [*ops, *edges]:
        assert name in text
    for row in table["cells"]["normal"].values():
        for ms in row.values():
            assert f"{ms:.3f}" in text
