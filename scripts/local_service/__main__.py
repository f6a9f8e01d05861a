"""`python scripts/local_service ...`: run the service in the foreground."""

import os
import sys

if not __package__:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from local_service.server import main  # noqa: E402

sys.exit(main())
