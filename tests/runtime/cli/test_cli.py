"""Tests of the command line itself: entry points, versions, what it imports, early refusals."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from nasc.compiler import CompileOptions, catalog
from nasc.dsl import load_space
from nasc.runtime.catalog import language_catalog
from nasc.runtime.cli import main
from nasc.runtime.hardware import memory


def _python(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout)


def test_the_torch_free_op_table_matches_the_registry():
    """`nasc check` reads op names from a table that equals the compiler's registry."""
    assert language_catalog() == catalog()


def test_check_and_show_without_sizes_do_not_import_torch():
    """`check`, `show --no-measure` and `--version` run without importing PyTorch."""
    script = (
        "import sys\n"
        "from nasc.runtime.cli import main\n"
        "assert main(['check', 'nb201', 'darts']) == 0\n"
        "assert main(['show', 'darts', '--no-measure']) == 0\n"
        "assert main(['show', 'darts', '--no-measure', '--arch', 'DARTS_V2']) == 0\n"
        "print('torch' in sys.modules)\n"
    )
    done = _python("-c", script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"


def test_python_m_nasc_and_the_cli_module_run_the_command_line():
    """`python -m nasc`, `python -m nasc.runtime` and `python -m nasc.runtime.cli` all run
    `nasc` (a torchrun line naming the cli module used to do nothing)."""
    for module in ("nasc", "nasc.runtime", "nasc.runtime.cli"):
        done = _python("-m", module, "--version")
        assert done.returncode == 0, (module, done.stderr)
        assert (
            done.stdout.startswith("nasc ")
            and f"torch {torch.__version__.split('+')[0]}" in done.stdout
        )
    done = _python("-m", "nasc.runtime.cli", "check", "nb201")
    assert done.returncode == 0 and "ok (15,625 architectures)" in done.stdout


def test_nasc_version(capsys):
    """`nasc --version` names the versions of nasc, torch and Python."""
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("nasc ") and "torch" in out and "Python" in out


@pytest.mark.parametrize("extra", [[], ["--code"], ["--json"]])
def test_show_refuses_a_network_too_large_to_build(extra, capsys):
    """`nasc show -D C=99999999` is refused from the IR's sizes in a moment, before allocating."""
    assert main(["show", "nb201", "-D", "C=99999999", *extra]) == 2
    err = capsys.readouterr().err
    assert "GiB for its weights alone" in err and "--no-measure" in err
    assert "Traceback" not in err


def test_the_memory_estimate_counts_what_the_process_holds(monkeypatch):
    """The training estimate adds the process's resident memory (PyTorch's own ~1 GB), and the
    refusal says so."""
    space = load_space("nb201", catalog=catalog())
    options = CompileOptions(search=True)
    cpu = torch.device("cpu")
    alone = memory.estimate_training_bytes(space, {"C": 4, "N": 1}, 16, options)
    held = memory.process_bytes()
    assert held > 50 << 20
    assert memory.check_fits(space, {"C": 4, "N": 1}, 16, options, cpu) >= alone + held // 2
    monkeypatch.setattr(memory, "available_bytes", lambda device: 1)
    with pytest.raises(memory.NascUsageError, match="this process holds"):
        memory.check_fits(space, {"C": 4, "N": 1}, 16, options, cpu)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--lr", "nan"], "lr=nan: must be a finite number"),
        (["--label-smoothing", "inf"], "label_smoothing=inf: must be a finite number"),
        (["--lr", "0"], "--lr 0: must be positive"),
        (["--momentum", "-1"], "--momentum -1: must not be negative"),
        (["--subset", "5000"], "--subset 5000: digits has only 1437 training examples"),
    ],
)
def test_nasc_train_refuses_settings_that_cannot_run(argv, message, tmp_path, capsys):
    """Non-finite or negative rates and a subset beyond the data end `nasc train` with exit 2
    and the setting named, before the run directory is made."""
    runs = tmp_path / "runs"
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|none~1|avg_pool_3x3~2|"
    base = ["train", "nb201", "--arch", arch, "--data", "digits", "-D", "C=4", "-D", "N=1"]
    assert main([*base, "--epochs", "1", "--runs-dir", str(runs), "--quiet", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not runs.exists()
