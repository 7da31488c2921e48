"""``python -m recframe``: the same as the ``recframe`` console script."""

import sys

from recframe.cli import main

sys.exit(main())
