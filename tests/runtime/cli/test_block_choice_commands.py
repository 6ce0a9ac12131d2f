"""Tests of block choices in the command line: `nasc check`, `nasc show` and `nasc export`."""

from __future__ import annotations

import json

from nasc.compiler import catalog
from nasc.dsl import load_space
from nasc.runtime.cli import main
from nasc.runtime.reports.describe import describe

ARCH = (
    "stage1_1=skip_connect down1=resblock stage2_1=sep_conv_3x3 down2=nor_conv_3x3 stage3=resblock"
)


def test_show_lists_the_block_choices_for_the_values():
    """`describe` reports each block choice with its decisions for the -D values, marks its
    layers `choice` in the wiring table, and counts the architectures of those decisions."""
    space = load_space("macro_choice", catalog=catalog(), overrides={"N": 2})
    facts = describe(space, {"N": 2}, measure=False)
    assert facts["cells"] == {}
    assert facts["choices"]["stage1"]["decisions"] == ["stage1_1", "stage1_2"]
    assert facts["choices"]["stage3"] == {
        "candidates": ["resblock", "nor_conv_3x3", "sep_conv_3x3", "skip_connect"],
        "shared": True,
        "stride": 1,
        "instances": 2,
        "decisions": ["stage3"],
        "architectures": 4,
    }
    assert facts["choices"]["down1"]["stride"] == 2
    kinds = [stage["kind"] for stage in facts["macro"]]
    assert kinds == ["stem"] + ["choice"] * 8 + ["head"]
    assert facts["architectures"] == 4**2 * 3 * 4**2 * 3 * 4


def test_show_and_export_take_a_blocks_string(tmp_path, capsys):
    """`--arch` with a blocks string fixes the network: `show --json` reports it fixed with the
    same string, and `export --format nas` writes one block per layer."""
    assert main(["show", "macro_choice", "-D", "N=1", "--arch", ARCH, "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["fixed"] and facts["arch"]["blocks"] == ARCH
    assert facts["parameters"] > 0
    out = tmp_path / "arch.nas"
    assert (
        main(
            [
                "export",
                "macro_choice",
                "-D",
                "N=1",
                "--arch",
                ARCH,
                "--format",
                "nas",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    text = out.read_text()
    assert "    skip_connect(C)\n    resblock(2C, stride = 2)\n    sep_conv_3x3(2C)\n" in text
    assert "choose" not in text and "N = 1" in text
    assert main(["check", str(out)]) == 0
    assert "ok (a fixed architecture)" in " ".join(capsys.readouterr().out.split())
