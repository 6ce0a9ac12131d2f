"""Shared test settings: hypothesis profiles, the `gpu` marker, and small helpers."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# Torch ops make the first examples slow and timings noisy on two cores: no deadlines. Examples
# are derived from each test's name (derandomize), so CI and a local run try the same ones and a
# red run is reproducible; NASC_HYPOTHESIS_RANDOM=1 explores new examples instead.
settings.register_profile(
    "nasc",
    deadline=None,
    derandomize=os.environ.get("NASC_HYPOTHESIS_RANDOM", "") != "1",
    max_examples=int(os.environ.get("NASC_HYPOTHESIS_EXAMPLES", "60")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("nasc")
torch.set_num_threads(min(2, torch.get_num_threads()))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (marked gpu); this machine has none")
    for item in items:
        if item.get_closest_marker("gpu") is not None:  # not a keyword: a folder may be `gpu`
            item.add_marker(skip)


@pytest.fixture(scope="session")
def catalog():
    """The compiler's op catalog, for linting spaces."""
    from nasc.compiler import catalog as make_catalog

    return make_catalog()
