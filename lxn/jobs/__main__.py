"""`python -m lxn.jobs <job> [flags]`: the `lxn` command without the installed script."""

import sys

from lxn.jobs import main

sys.exit(main())
