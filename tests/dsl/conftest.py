"""Shared fixtures of the language tests: the reference spaces, loaded and linted once."""

from __future__ import annotations

import pytest

from nasc.dsl import load_space


@pytest.fixture(scope="session")
def nb201(catalog):
    """The NB201 reference space."""
    return load_space("nb201", catalog=catalog)


@pytest.fixture(scope="session")
def darts(catalog):
    """The DARTS reference space."""
    return load_space("darts", catalog=catalog)


@pytest.fixture(scope="session")
def tricell(catalog):
    """The tricell reference space (an explicit comparison subset and a concat output)."""
    return load_space("tricell", catalog=catalog)
