"""``python -m simulators.offline_cli``: the offline commands on their own."""

import sys

from simulators.offline_cli import main

sys.exit(main())
