"""`python -m engine` runs the batch CLI (what the wizard starts as its child process)."""

import sys

from engine.cli import main

sys.exit(main())
