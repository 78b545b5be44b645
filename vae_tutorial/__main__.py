"""``python -m vae_tutorial train ...`` / ``evaluate ...``: see :mod:`vae_tutorial.cli`."""

import sys

from vae_tutorial.cli import main

if __name__ == "__main__":
    sys.exit(main())
