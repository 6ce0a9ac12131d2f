"""`nasc.testing`: hypothesis strategies over search spaces and property checks of a space.

    from hypothesis import given
    from nasc.dsl import load_space
    from nasc.testing import check_shrinking, shrink_sequences

    space = load_space("my_space.nas")

    @given(shrink_sequences(space))
    def test_my_space_shrinks_to_k(sequence):
        check_shrinking(space, sequence)

`check_space(space)` runs every property of `PROPERTIES` at once (what `nasc test FILE.nas`
does); see docs/testing.md. PyTorch is imported only by the checks that build networks.
"""

from nasc.runtime.testing.properties import (
    PROPERTIES,
    PropertyFailure,
    PropertyResult,
    Report,
    check_round_trip,
    check_shrinking,
    check_space,
    check_supernet_equals_export,
    describe_genotype,
    render_report,
)
from nasc.runtime.testing.strategies import (
    ShrinkSequence,
    expressions,
    genotypes,
    masks,
    names,
    searchable_spaces,
    shrink_sequences,
    spaces,
)
from nasc.runtime.testing.widths import (
    WIDTH_PROPERTIES,
    check_width_masks,
    check_width_round_trip,
    check_widths_only_lose,
)

__all__ = [
    "PROPERTIES",
    "WIDTH_PROPERTIES",
    "check_width_masks",
    "check_width_round_trip",
    "check_widths_only_lose",
    "PropertyFailure",
    "PropertyResult",
    "Report",
    "ShrinkSequence",
    "check_round_trip",
    "check_shrinking",
    "check_space",
    "check_supernet_equals_export",
    "describe_genotype",
    "expressions",
    "genotypes",
    "masks",
    "names",
    "render_report",
    "searchable_spaces",
    "shrink_sequences",
    "spaces",
]
