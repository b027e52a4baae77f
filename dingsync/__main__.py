from __future__ import annotations

from dingsync.cli import main

raise SystemExit(main())
