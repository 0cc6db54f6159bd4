"""``python -m mi_helpers.cli``: the same as the ``mi-helpers`` command."""

import sys

from mi_helpers.cli import main

sys.exit(main())
