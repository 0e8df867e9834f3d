"""`python -m engine` runs the batch CLI (what the wizard starts as its child process)."""

from engine.cli import entry

entry()
