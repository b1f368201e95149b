"""`python -m seqgen.caffe SCRIPT.py [ARGS]`: run a pycaffe script on seqgen."""
import sys

from .script import main

sys.exit(main())
