"""The nightly brand-monitoring scan.

The job's code is lxn/jobs/scan.py (also the `lxn scan` command); this file is what
`ray job submit -- python jobs/scan.py` and cron lines run.
"""

import sys

from lxn.jobs.scan import *  # noqa: F403 - the job's names (main, its config parser), as before
from lxn.jobs.scan import main

if __name__ == "__main__":
    sys.exit(main())
