"""``python -m offline``: see ``offline.cli``."""

import sys

from offline.cli import main

sys.exit(main())
