"""`python -m seqgen ...`: the same as the `seqgen` command."""
from .app.cli import run

run()
