"""`python -m memcc` runs the memcc command line."""

import sys

from memcc.cli import main

if __name__ == "__main__":
    sys.exit(main())
