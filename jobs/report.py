"""The paper's tables (5, 6, 7, 8, 9) and per-class figures from a training grid's MLflow runs.

The job's code is lxn/jobs/report.py (also the `lxn report` command); this file is what
`ray job submit -- python jobs/report.py` and cron lines run.
"""

import sys

from lxn.jobs.report import *  # noqa: F403 - the job's names (main, its config parser), as before
from lxn.jobs.report import main

if __name__ == "__main__":
    sys.exit(main())
