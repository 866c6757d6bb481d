"""`python -m neuralct ...` runs the command line (`neuralct.cli`)."""

import sys

from .cli import main

sys.exit(main())
