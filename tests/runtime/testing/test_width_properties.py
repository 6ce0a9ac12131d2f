"""The width properties of `nasc.testing` on the NATS-Bench size space (small examples)."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nasc.compiler import catalog, compile_space
from nasc.dsl import Genotype, load_space
from nasc.dsl.ir import BLOCK_EDGE
from nasc.testing import (
    PropertyFailure,
    check_width_masks,
    check_width_round_trip,
    check_widths_only_lose,
    genotypes,
)

SPACE = load_space("nats_sss", catalog=catalog())
SMALL = {"size": 8}


@functools.lru_cache(maxsize=1)
def supernet():
    """One nats_sss supernet at 8x8 images, shared by the examples (they reset its masks)."""
    return compile_space(SPACE, SMALL, seed=0)


def reset(net):
    """Every width live again."""
    for choice in SPACE.width_choices:
        net.arch.mask(choice.label).fill_(True)
    net.arch.version += 1
    return net


@settings(max_examples=4)
@given(genotypes(SPACE))
def test_a_masked_width_is_its_fixed_network(genotype):
    """Masked to one width per layer, the supernet equals the sliced fixed network."""
    check_width_masks(reset(supernet()), genotype, SMALL)


@settings(max_examples=8)
@given(
    st.lists(
        st.lists(
            st.tuples(
                st.sampled_from([c.label for c in SPACE.width_choices]),
                st.sampled_from([str(w) for w in range(8, 65, 8)]),
            ),
            max_size=6,
        ),
        min_size=1,
        max_size=4,
    )
)
def test_masks_only_lose_widths(discards):
    """Discards never bring a width back nor widen a layer."""
    check_widths_only_lose(reset(supernet()), discards)


@settings(max_examples=20)
@given(genotypes(SPACE))
def test_genotypes_with_widths_round_trip(genotype):
    """The fixed network of a genotype prints, parses back and names its widths."""
    check_width_round_trip(SPACE, genotype, catalog())


def test_a_wrong_slice_is_caught():
    """A supernet whose sliced weights were changed after export no longer equals it: the
    property can fail."""
    net = reset(supernet())
    genotype = Genotype({c.label: {BLOCK_EDGE: ("16",)} for c in SPACE.width_choices})
    from nasc.compiler import export_network

    def broken(space, genotype, overrides, supernet):
        fixed = export_network(space, genotype, overrides, supernet=supernet)
        first = next(p for p in fixed.parameters() if p.dim() == 4)
        first.data.add_(1.0)
        return fixed

    import nasc.compiler

    real = nasc.compiler.export_network
    nasc.compiler.export_network = broken
    try:
        with pytest.raises(PropertyFailure, match="other values"):
            check_width_masks(net, genotype, SMALL)
    finally:
        nasc.compiler.export_network = real
