"""``python -m wgan.engines``: build the compiled MLP step now (what ``make`` runs); prints where, or why not."""

import sys

from wgan.engines.native import main

sys.exit(main())
