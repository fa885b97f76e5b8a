"""``python -m sparseforge``: the same command line as the ``sparseforge`` command."""

import sys

from .cli import main

sys.exit(main())
