"""Onboard a brand from a few example images, without retraining: a new registered version.

The job's code is lxn/jobs/brands.py (also the `lxn brands` command); this file is what
`ray job submit -- python jobs/brands.py` and cron lines run.
"""

import sys

from lxn.jobs.brands import *  # noqa: F403 - the job's names (main, its config parser), as before
from lxn.jobs.brands import main

if __name__ == "__main__":
    sys.exit(main())
