from cellviewer.app import main

raise SystemExit(main())
