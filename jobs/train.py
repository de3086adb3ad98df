"""Train LogoXpertNet with Ray Train, track it in MLflow, register the best weights.

The job's code is lxn/jobs/train.py (also the `lxn train` command); this file is what
`ray job submit -- python jobs/train.py` and cron lines run.
"""

import sys

from lxn.jobs.train import *  # noqa: F403 - the job's names (main, its config parser), as before
from lxn.jobs.train import main

if __name__ == "__main__":
    sys.exit(main())
