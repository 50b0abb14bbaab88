from pyrlab.cli import main

raise SystemExit(main())
