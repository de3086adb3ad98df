"""The review loop: export a night's doubtful rows to a labelling tool, import the answers.

The job's code is lxn/jobs/review.py (also the `lxn review` command); this file is what
`ray job submit -- python jobs/review.py` and cron lines run.
"""

import sys

from lxn.jobs.review import *  # noqa: F403 - the job's names (main, its config parser), as before
from lxn.jobs.review import main

if __name__ == "__main__":
    sys.exit(main())
