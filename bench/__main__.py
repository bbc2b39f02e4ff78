"""``python -m bench``: run the benchmark scenarios and report the ratios."""

from __future__ import annotations

import sys

from bench.runner import main

if __name__ == "__main__":
    sys.exit(main())
