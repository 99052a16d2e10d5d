from robustmvc.cli import main

raise SystemExit(main())
