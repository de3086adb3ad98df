"""Record the weights digest of a registered version that has none, after checking its archive.

The job's code is lxn/jobs/trust.py (also the `lxn trust` command); this file is what
`ray job submit -- python jobs/trust.py` and cron lines run.
"""

import sys

from lxn.jobs.trust import *  # noqa: F403 - the job's names (main, its config parser), as before
from lxn.jobs.trust import main

if __name__ == "__main__":
    sys.exit(main())
