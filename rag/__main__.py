from __future__ import annotations

import sys

from rag.surfaces.cli import main

sys.exit(main())
