from neon.cli import main

raise SystemExit(main())
