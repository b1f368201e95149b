"""`python -m seqgen ...`: the same as the `seqgen` command."""
import sys

from .app.cli import main

sys.exit(main())
