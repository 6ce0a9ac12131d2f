"""Python ops come in only as plugins: `register_op` from user code, `--ops MODULE` on the
command line; a `.nas` file alone never runs code."""

from __future__ import annotations

import json

import pytest

from nasc.compiler import OPS, CompileOptions, catalog, compile_space, get_op
from nasc.dsl import load_space
from nasc.runtime.cli import main

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
cell c(x) {
    n1 = x:small
    keep 1 per edge
    out n1
}
network net(C = 4, classes = 3) {
    input(1, 8)
    stem conv3x3_bn(C)
    c @ C
    head pool_linear(classes)
}
"""


@pytest.fixture
def files(tmp_path):
    plugin = tmp_path / "my_ops.py"
    plugin.write_text(PLUGIN)
    space = tmp_path / "space.nas"
    space.write_text(SPACE)
    yield plugin, space
    OPS.pop("plugin_conv_bn", None)


def test_a_space_naming_an_unregistered_op_is_refused_without_the_plugin(files, capsys):
    """Without `--ops`, the plugin's op is unknown: the file does not import it."""
    _, space = files
    assert main(["check", str(space)]) == 2
    assert "unknown op `plugin_conv_bn`" in capsys.readouterr().err
    assert "plugin_conv_bn" not in OPS


def test_ops_flag_imports_the_module_before_compiling(files, capsys):
    """`--ops FILE.py` registers the op; check and show then compile and count it."""
    plugin, space = files
    assert main(["check", "--ops", str(plugin), str(space)]) == 0
    assert "plugin_conv_bn" in OPS
    capsys.readouterr()
    assert main(["show", "--ops", str(plugin), str(space), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    net = compile_space(load_space(str(space), catalog=catalog()), options=CompileOptions())
    assert facts["parameters"] == net.num_parameters()
    assert get_op("plugin_conv_bn").doc == "A 3x3 conv and BN, registered by a plugin."


def test_a_broken_plugin_is_a_located_usage_error(tmp_path, capsys):
    """A module that cannot be found, or raises while imported, exits 2 with a hint."""
    assert main(["check", "--ops", "no_such_module_xyz", "nb201"]) == 2
    assert "--ops no_such_module_xyz: cannot import it" in capsys.readouterr().err
    broken = tmp_path / "broken.py"
    broken.write_text("raise ValueError('nope')\n")
    assert main(["check", "--ops", str(broken), "nb201"]) == 2
    assert "raised ValueError: nope" in capsys.readouterr().err


def _forget(plugin):
    """What a new process knows: neither the plugin's op nor that its module was imported."""
    from nasc.runtime import plugins

    OPS.pop("plugin_conv_bn", None)
    plugins._loaded.discard(str(plugin.resolve()))


def test_a_run_records_its_plugins_for_resume_and_training(files, tmp_path, capsys):
    """A search with `--ops` records the plugin (by absolute path) in config.json; a resume in
    a new process, and `nasc train` of the found arch.nas, import it again without `--ops`."""
    plugin, space = files
    runs = tmp_path / "runs"
    tiny = ["--data", "digits", "--subset", "32", "--batch-size", "16", "--quiet"]
    argv = ["search", str(space), "--ops", str(plugin), "--strategy", "darts-1st", *tiny]
    assert main([*argv, "--epochs", "1", "--runs-dir", str(runs)]) == 0
    [run] = runs.iterdir()
    assert json.loads((run / "config.json").read_text())["plugins"] == [str(plugin.resolve())]
    _forget(plugin)
    assert main(["search", "--resume", str(run), "--quiet"]) == 0, capsys.readouterr().err
    assert "plugin_conv_bn" in OPS
    _forget(plugin)
    trained = tmp_path / "trained"
    code = main(
        ["train", str(run / "arch.nas"), *tiny, "--epochs", "1", "--runs-dir", str(trained)]
    )
    assert code == 0, capsys.readouterr().err
    [train_run] = trained.iterdir()
    config = json.loads((train_run / "config.json").read_text())
    assert config["plugins"] == [str(plugin.resolve())]
    _forget(plugin)
    assert main(["eval", str(train_run), "--data", "digits", "--device", "cpu"]) == 0


def test_every_search_and_train_flag_reaches_the_run():
    """Each `nasc search` / `nasc train` flag is a request field or a preset setting, so no
    flag is dropped on its way from the command line to the run (and the Python API)."""
    import attrs

    from nasc.runtime.cli import build_parser
    from nasc.runtime.requests import SearchRequest, TrainRequest
    from nasc.runtime.search.config import SearchConfig
    from nasc.runtime.train.config import TrainConfig

    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    for name, request, config in (
        ("search", SearchRequest, SearchConfig),
        ("train", TrainRequest, TrainConfig),
    ):
        flags = {a.dest for a in commands[name]._actions if a.dest != "help"}
        fields = {f.name for f in attrs.fields(request)} | {f.name for f in attrs.fields(config)}
        assert flags <= fields, (name, sorted(flags - fields))


def test_a_plugin_package_beside_the_space_is_imported_by_name(tmp_path, monkeypatch, capsys):
    """`--ops my_pkg` with a package folder `my_pkg/` in the working directory imports the
    package (a folder is not a plugin file)."""
    package = tmp_path / "my_plugin_pkg"
    package.mkdir()
    (package / "__init__.py").write_text(PLUGIN)
    (tmp_path / "space.nas").write_text(SPACE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert main(["check", "--ops", "my_plugin_pkg", "space.nas"]) == 0, capsys.readouterr()
        assert "plugin_conv_bn" in OPS
    finally:
        OPS.pop("plugin_conv_bn", None)


def test_a_recorded_plugin_that_is_gone_or_malformed_is_a_clear_error(files, tmp_path, capsys):
    """A resume whose recorded plugin file has moved names config.json and the plugin, not a
    flag nobody gave; a `plugins` entry that is not a list of names is refused by name."""
    plugin, space = files
    runs = tmp_path / "runs"
    tiny = ["--data", "digits", "--subset", "32", "--batch-size", "16", "--quiet"]
    argv = ["search", str(space), "--ops", str(plugin), "--strategy", "darts-1st", *tiny]
    assert main([*argv, "--epochs", "1", "--runs-dir", str(runs)]) == 0
    [run] = runs.iterdir()
    _forget(plugin)
    plugin.rename(tmp_path / "moved.py")
    assert main(["search", "--resume", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "config.json records the plugin" in err and "no such file" in err
    assert "Traceback" not in err
    config = run / "config.json"
    config.write_text(config.read_text().replace(json.dumps(str(plugin.resolve())), "5"))
    assert main(["search", "--resume", str(run), "--quiet"]) == 2
    assert "`plugins` must be a list" in capsys.readouterr().err
