"""The nightly page for a range of nights, from the reports already written.

The job's code is lxn/jobs/nightly.py (also the `lxn nightly` command); this file is what
`ray job submit -- python jobs/nightly.py` and cron lines run.
"""

import sys

from lxn.jobs.nightly import *  # noqa: F403 - the job's names (main, its config parser), as before
from lxn.jobs.nightly import main

if __name__ == "__main__":
    sys.exit(main())
