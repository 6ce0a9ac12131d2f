"""`python -m nasc ...` runs the `nasc` command line.

`nasc` itself is a namespace package made of `nasc.dsl`, `nasc.compiler`, `nasc.runtime` and
`nasc.spaces`; pyproject.toml maps this folder to `nasc`, so this module installs as
`nasc/__main__.py` and nothing else lands at the top of the namespace.
"""

import sys

from nasc.runtime.cli import main

sys.exit(main())
