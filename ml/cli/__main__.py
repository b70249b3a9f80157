"""``python -m ml.cli``: the ``roost`` command."""

import sys

from ml.cli import main

sys.exit(main())
