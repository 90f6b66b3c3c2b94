import sys

from bandit_engine.cli import main

sys.exit(main())
