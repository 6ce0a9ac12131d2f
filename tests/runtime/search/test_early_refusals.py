"""Inputs a search (or a training run) cannot use are refused before the run directory is made:
a space with nothing to search, a resume naming another space, ops whose shapes do not fit, and
shrink steps the space cannot use."""

from __future__ import annotations

import pytest

from nasc.compiler import OPS
from nasc.dsl import NascUsageError, load_space
from nasc.runtime.catalog import language_catalog
from nasc.runtime.cli import main
from nasc.runtime.search.config import make_config
from nasc.runtime.strategies.registry import strategy_class

QUICK = [
    "--data", "digits", "--subset", "32", "--epochs", "3", "--shrink-steps", "1",
    "--shrink-interval", "1", "--batch-size", "16", "--measure-samples", "16", "--quiet",
]  # fmt: skip

NOTHING_TO_SEARCH = """
ops o = {none, skip_connect}
cell searched(x) { n1 = x:o  keep 1 per edge  out n1 }
cell plain(x) { n1 = x:skip_connect  out n1 }
network n(C = 4, classes = 10, channels = 1, size = 8) {
    input(channels, size)
    stem conv3x3_bn(C)
    plain @ C
    head pool_linear(classes)
}
"""

BAD_OPS = '''
from torch import nn
from nasc.compiler import register_op

@register_op("too_many_channels")
def build(C_in, C_out, stride, affine, track_running_stats=True):
    """A conv that gives one channel more than its place takes."""
    return nn.Conv2d(C_in, C_out + 1, 3, stride=stride, padding=1, bias=False)

@register_op("shrinks_the_map")
def build_small(C_in, C_out, stride, affine, track_running_stats=True):
    """An unpadded conv: the map loses a pixel on every side."""
    return nn.Conv2d(C_in, C_out, 3, stride=stride, padding=0, bias=False)
'''


def _space_with(op: str, searched: bool = True) -> str:
    """A network of one cell whose first edge chooses between `skip_connect` and `op` (or, not
    `searched`, is `op`), and whose second node adds that edge's map to the input's."""
    first = "x:o" if searched else f"x:{op}"
    keep = "keep 1 per edge" if searched else ""
    return f"""
ops o = {{skip_connect, {op}}}
cell c(x) {{ n1 = {first}  n2 = n1:skip_connect + x:skip_connect  {keep}  out n2 }}
network n(C = 4, classes = 10, channels = 1, size = 8) {{
    input(channels, size)
    stem conv3x3_bn(C)
    c @ C
    head bn_relu_pool_linear(classes)
}}
"""


@pytest.fixture
def bad_ops(tmp_path):
    """A plugin of two ops whose output shapes do not fit their place."""
    plugin = tmp_path / "bad_ops.py"
    plugin.write_text(BAD_OPS)
    yield plugin
    OPS.pop("too_many_channels", None)
    OPS.pop("shrinks_the_map", None)


def test_a_space_with_nothing_to_search_is_refused(tmp_path, capsys):
    """A network that places no cell with choices is no search: refused with the way out."""
    space = tmp_path / "fixed.nas"
    space.write_text(NOTHING_TO_SEARCH)
    runs = tmp_path / "runs"
    assert main(["search", str(space), *QUICK, "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err
    assert "places no cell with choices: there is nothing to search" in err
    assert "nasc train" in err and "Traceback" not in err
    assert not runs.exists()


@pytest.mark.parametrize("op", ["too_many_channels", "shrinks_the_map"])
def test_ops_whose_shapes_do_not_fit_leave_no_run_directory(op, bad_ops, tmp_path, capsys):
    """A plugin op with the wrong channel count or map size is refused before the run
    directory exists, by a search and by a training run alike, naming the op (the first build
    runs each Python op once at its place, `compiler/probe.py`)."""
    runs = tmp_path / "runs"
    space = tmp_path / "space.nas"
    space.write_text(_space_with(op))
    assert main(["search", str(space), "--ops", str(bad_ops), *QUICK, "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err
    assert f"the Python op `{op}`" in err and "Traceback" not in err
    assert "run directory" not in err and not runs.exists()
    fixed = tmp_path / "fixed.nas"
    fixed.write_text(_space_with(op, searched=False))
    train = ["--data", "digits", "--subset", "32", "--epochs", "1", "--batch-size", "16"]
    argv = ["train", str(fixed), "--ops", str(bad_ops), *train, "--quiet", "--runs-dir", str(runs)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"the Python op `{op}`" in err and "Traceback" not in err
    assert not runs.exists()


def test_resuming_with_another_space_is_refused(run_copy, tmp_path, capsys):
    """`nasc search OTHER --resume RUN` names both spaces instead of resuming the run's own; the
    run's own space, named again, resumes as before."""
    other = tmp_path / "other.nas"
    other.write_text(NOTHING_TO_SEARCH)
    assert main(["search", str(other), "--resume", str(run_copy), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{run_copy} searched the space in {run_copy / 'space.nas'} (`nb201`)" in err
    assert f"not {other} (`n`)" in err and "Traceback" not in err
    assert main(["search", "darts", "--resume", str(run_copy), "--quiet"]) == 2
    assert "not darts (`darts`)" in capsys.readouterr().err
    assert not (run_copy / "result.json").exists()
    assert main(["search", "nb201", "--resume", str(run_copy), "--quiet"]) == 0
    assert (run_copy / "result.json").is_file()


def test_shrink_steps_beyond_what_the_space_can_use_are_refused():
    """NB201's subsets drop 4 of 5 candidates each: a fifth step would discard nothing, so an
    explicit `--shrink-steps 5` is refused, naming the most."""
    space = load_space("nb201", catalog=language_catalog())
    isdarts = strategy_class("isdarts")
    config = make_config("nb201", "isdarts", {"shrink_steps": 5, "epochs": 30})
    with pytest.raises(NascUsageError, match="at most 4 shrink steps") as info:
        isdarts.fit_space(config, space, given={"shrink_steps"})
    assert "--shrink-steps 4" in info.value.hint
    fitted, notes = isdarts.fit_space(
        make_config("nb201", "isdarts", {"shrink_steps": 4}), space, given={"shrink_steps"}
    )
    assert fitted.shrink_steps == 4 and notes == []


def test_a_presets_shrink_steps_are_lowered_to_what_the_space_can_use():
    """The NB201 preset's 4 steps on `gated` (whose largest subset drops 3): the search shrinks
    in 3 steps and says so, rather than making an empty step or refusing a value never given."""
    space = load_space("gated", catalog=language_catalog())
    config = make_config("nb201", "isdarts", {})
    fitted, notes = strategy_class("isdarts").fit_space(config, space, given=set())
    assert config.shrink_steps == 4 and fitted.shrink_steps == 3
    assert len(notes) == 1 and "3 shrink steps" in notes[0] and "preset" in notes[0]
    darts = make_config("nb201", "darts-1st", {})
    assert strategy_class("darts-1st").fit_space(darts, space, given=set()) == (darts, [])
