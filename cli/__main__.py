"""`python -m cli ...`: the `service-integration` commands without the console script."""

import sys

from cli.main import main

sys.exit(main())
