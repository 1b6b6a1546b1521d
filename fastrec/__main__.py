"""``python -m fastrec``: the same as the ``fastrec`` command (see :mod:`fastrec.cli`)."""

import sys

from fastrec.cli import main

if __name__ == "__main__":
    sys.exit(main())
