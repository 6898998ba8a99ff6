"""`python -m flowexec.cli`."""

import sys

from flowexec.cli.main import main

sys.exit(main())
