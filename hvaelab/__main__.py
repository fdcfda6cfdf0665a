"""``python -m hvaelab …``: the command line, also as ``torchrun … -m hvaelab train …``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
