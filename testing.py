"""`nasc.testing`: hypothesis strategies over search spaces and property checks of a space.

The code lives in `runtime/testing/` (it builds networks and runs shrink steps, so it sits on
the runtime); this module is its public name. See docs/testing.md.
"""

from nasc.runtime.testing import *  # noqa: F403 - the public names, listed in __all__
from nasc.runtime.testing import __all__  # noqa: F401
