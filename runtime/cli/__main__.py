"""`python -m nasc.runtime.cli ...` runs the `nasc` command line (also under `torchrun -m`)."""

import sys

from nasc.runtime.cli.commands import main

sys.exit(main())
