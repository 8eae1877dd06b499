"""Run nx-27017 (the MongoDB wire-protocol server used locally) without its per-command
INFO logging, which costs it a large share of its CPU under load.

    python -m deploy.local.mongodb_server [nx-27017 arguments]
"""

import logging
import sys

from nx_27017.nx_27017 import main

if __name__ == "__main__":
    # nx-27017 calls logging.basicConfig itself; configuring first makes that a no-op.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    sys.argv[0] = "nx-27017"
    sys.exit(main())
