"""`python -m minisnn ...`: the same command line as the `minisnn` console script."""
from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
