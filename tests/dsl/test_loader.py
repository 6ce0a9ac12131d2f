"""Tests of the entry points that find and read `.nas` files: `find_space`, `load_space`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nasc.dsl import (
    NascUsageError,
    NasSemanticError,
    NasSyntaxError,
    builtin_spaces,
    find_space,
    load_space,
    parse_space,
    read_source,
)

SPACES = Path(__file__).parents[2] / "spaces"


def test_builtin_spaces_are_the_shipped_files():
    """The built-in spaces are the `.nas` files of `spaces/`, by name."""
    spaces = builtin_spaces()
    assert sorted(spaces) == sorted(path.stem for path in SPACES.glob("*.nas"))
    assert {"nb201", "darts", "tricell"} <= set(spaces)
    assert all(path.is_file() and path.suffix == ".nas" for path in spaces.values())


@pytest.mark.parametrize("name", ["nb201", "darts", "tricell"])
def test_load_builtin_by_name(catalog, name):
    """A built-in name loads the shipped space, the same as loading its path."""
    assert find_space(name) == builtin_spaces()[name]
    space = load_space(name, catalog=catalog)
    assert space == load_space(SPACES / f"{name}.nas", catalog=catalog)
    assert space.name == name


def test_load_path_as_string_and_path(tmp_path):
    """A path loads whether given as `str` or `Path`, and overrides are checked."""
    path = tmp_path / "space.nas"
    path.write_text((SPACES / "nb201.nas").read_text())
    assert load_space(str(path)) == load_space(path)
    with pytest.raises(NasSemanticError, match=re.escape("unknown parameter `D` in -D D=1")):
        load_space(path, overrides={"D": 1})


def test_missing_path(tmp_path):
    """A path that does not exist and names no built-in space lists the built-in spaces."""
    missing = tmp_path / "nope.nas"
    with pytest.raises(NascUsageError, match=re.escape(f"{missing}: no such file")) as info:
        find_space(missing)
    assert info.value.hint.endswith(", ".join(sorted(builtin_spaces())))
    with pytest.raises(NascUsageError, match="no such file"):
        load_space(str(missing))
    with pytest.raises(NascUsageError, match=re.escape("nb2001: no such file")):
        load_space("nb2001")


def test_directory(tmp_path):
    """A folder is refused with a hint to name a file in it."""
    with pytest.raises(NascUsageError, match=re.escape(f"{tmp_path} is a folder, not a .nas file")):
        load_space(tmp_path)
    with pytest.raises(NascUsageError, match="is a folder"):
        find_space(str(tmp_path))


def test_directory_read_directly(tmp_path):
    """`read_source` turns other OS errors into usage errors too."""
    with pytest.raises(NascUsageError, match=re.escape(f"{tmp_path}: ")):
        read_source(tmp_path)


def test_non_utf8_file(tmp_path):
    """A file that is not UTF-8 is refused with the offending byte's position."""
    path = tmp_path / "latin.nas"
    path.write_bytes(b"ops s = {none}\n# caf\xe9\n")
    with pytest.raises(NascUsageError, match=re.escape(f"{path} is not UTF-8 text (byte 20)")):
        load_space(path)


def test_permission_error_becomes_usage_error(tmp_path, monkeypatch):
    """A `PermissionError` while reading becomes a usage error, whoever runs the tests."""
    path = tmp_path / "secret.nas"
    path.write_text("network n() { input(3, 8) head pool_linear(2) }")

    import os

    opened = os.open

    def refuse(name, *args, **kwargs):
        if str(name) == str(path):
            raise PermissionError(13, "Permission denied", str(name))
        return opened(name, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(NascUsageError, match=re.escape(f"{path}: permission denied")) as info:
        load_space(path)
    assert info.value.hint == "check the file's permissions"


def test_local_file_wins_over_builtin_name(tmp_path, monkeypatch):
    """An existing path is read even when its name is also a built-in space's."""
    monkeypatch.chdir(tmp_path)
    Path("nb201").write_text("network local() { input(3, 8) head pool_linear(2) }")
    assert find_space("nb201") == Path("nb201")
    assert load_space("nb201").name == "local"


def test_errors_name_the_file_and_carry_its_source(tmp_path):
    """Errors from a loaded file name the path as given and show its line."""
    path = tmp_path / "broken.nas"
    text = "ops s = {none}\nops t {none}\n"
    path.write_text(text)
    with pytest.raises(NasSyntaxError) as info:
        load_space(str(path))
    error = info.value
    assert error.span.file == str(path)
    assert error.source == text
    assert error.render().startswith(f"{path}:2:7: error: unexpected `{{`; expected `=`\n")


def test_empty_file(tmp_path):
    """An empty file parses but is not a space: it has no network."""
    path = tmp_path / "empty.nas"
    path.write_text("")
    with pytest.raises(NasSemanticError, match="the file has no `network`"):
        load_space(path)
    assert parse_space("network n() { input(3, 8) head pool_linear(2) }").name == "n"


def test_a_file_larger_than_its_reported_size_is_read_only_up_to_the_cap(tmp_path, monkeypatch):
    """The cap holds for what is read, not for what `stat` said: a file that grows after it was
    measured (here: one whose size is reported small) is still refused at the cap."""
    import os

    from nasc.dsl import MAX_SOURCE_BYTES, NasSyntaxError

    path = tmp_path / "growing.nas"
    path.write_text("#" * (MAX_SOURCE_BYTES + 10))
    real_stat = Path.stat

    def small(self, *args, **kwargs):
        found = real_stat(self, *args, **kwargs)
        if self == path:
            return os.stat_result((found.st_mode, *found[1:6], 10, *found[7:]))
        return found

    monkeypatch.setattr(Path, "stat", small)
    with pytest.raises(NasSyntaxError, match="a .nas file is at most"):
        load_space(path)
