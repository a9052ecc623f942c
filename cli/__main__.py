from authtrace.main import main

raise SystemExit(main())
