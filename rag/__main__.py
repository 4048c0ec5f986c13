from __future__ import annotations

import sys

from rag.launcher import main

sys.exit(main())
