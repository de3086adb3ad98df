"""Prepare a logo dataset for training: validate, deduplicate, split, re-encode into Parquet.

The job's code is lxn/jobs/prepare.py (also the `lxn prepare` command); this file is what
`ray job submit -- python jobs/prepare.py` and cron lines run.
"""

import sys

from lxn.jobs.prepare import *  # noqa: F403 - the job's names (main, its config parser), as before
from lxn.jobs.prepare import main

if __name__ == "__main__":
    sys.exit(main())
