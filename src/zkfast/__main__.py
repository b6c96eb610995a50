from zkfast.cli import main

raise SystemExit(main())
