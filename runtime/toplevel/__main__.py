"""`python -m nasc ...` runs the `nasc` command line.

pyproject.toml maps this folder to the package `nasc`: `__init__.py` here is the Python API (its
names load lazily), and `nasc.dsl`, `nasc.compiler`, `nasc.runtime` and `nasc.spaces` live in
their own folders.
"""

import sys

from nasc.runtime.cli import main

sys.exit(main())
