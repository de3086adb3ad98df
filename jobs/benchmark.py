"""Benchmarks that print and write figures.

The job's code is lxn/jobs/benchmark.py (also the `lxn benchmark` command); this file is what
`ray job submit -- python jobs/benchmark.py` and cron lines run.
"""

import sys

from lxn.jobs.benchmark import *  # noqa: F403 - the job's names (main, its config parser), as before
from lxn.jobs.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
