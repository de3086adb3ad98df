"""Evaluate registered models on labelled images, through the scan's own fetch/decode/predict path.

The job's code is lxn/jobs/evaluate.py (also the `lxn evaluate` command); this file is what
`ray job submit -- python jobs/evaluate.py` and cron lines run.
"""

import sys

from lxn.jobs.evaluate import *  # noqa: F403 - the job's names (main, its config parser), as before
from lxn.jobs.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
