"""``python -m mailconform merge …``: the same as the ``mailconform`` command."""

import sys

from mailconform.cli import main

sys.exit(main())
