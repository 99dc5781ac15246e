"""``python -m corral.supervisor``: the same as the ``corral`` command."""

import sys

from corral.supervisor.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
