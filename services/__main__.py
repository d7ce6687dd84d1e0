from lesslabels.cli.main import main

raise SystemExit(main())
