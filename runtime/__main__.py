"""`python -m nasc.runtime ...` runs the `nasc` command line (also under `torchrun -m`)."""

import sys

from nasc.runtime.cli import main

sys.exit(main())
