"""``python -m neon``: the ``neon`` command (an entry point the interpreter runs, never imported)."""

from cli.main import main

raise SystemExit(main())
