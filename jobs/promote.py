"""Promote a registered model version: evaluate the challenger and the champion now, on the same

The job's code is lxn/jobs/promote.py (also the `lxn promote` command); this file is what
`ray job submit -- python jobs/promote.py` and cron lines run.
"""

import sys

from lxn.jobs.promote import *  # noqa: F403 - the job's names (main, its config parser), as before
from lxn.jobs.promote import main

if __name__ == "__main__":
    sys.exit(main())
