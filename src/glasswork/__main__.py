"""`python -m glasswork`: the `glasswork` command."""

from glasswork.cli import main

raise SystemExit(main())
