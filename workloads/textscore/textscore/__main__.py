"""``python -m textscore``: run the service (see textscore.server.main)."""

import sys

from textscore.server import main

sys.exit(main())
