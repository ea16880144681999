"""``python -m backend ...``: the LatentSky command line."""

import sys

from backend.cli import main

sys.exit(main())
