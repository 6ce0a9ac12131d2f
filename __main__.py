"""`python -m nasc ...` runs the `nasc` command line.

The repository's root is the package `nasc` (see pyproject.toml): `__init__.py` beside this file is
the Python API, and `nasc.dsl`, `nasc.compiler`, `nasc.runtime` and `nasc.spaces` are the folders.
"""

import sys

from nasc.runtime.cli import main

sys.exit(main())
