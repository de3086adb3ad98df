"""Where else did this mark appear: the scanned objects most similar to an image.

The job's code is lxn/jobs/search.py (also the `lxn search` command); this file is what
`ray job submit -- python jobs/search.py` and cron lines run.
"""

import sys

from lxn.jobs.search import *  # noqa: F403 - the job's names (main, its config parser), as before
from lxn.jobs.search import main

if __name__ == "__main__":
    sys.exit(main())
