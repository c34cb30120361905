"""`python -m homeserver`: see homeserver.cli."""

import sys

from homeserver.cli import main

sys.exit(main())
