"""`python -m minisnn.bench ...` (the worker processes are started this way)."""
import sys

from .command import main

sys.exit(main())
