"""Run nx-27017 (the MongoDB wire-protocol server used locally) without its per-command
INFO logging, which costs it a large share of its CPU under load, and with index commands
answered as MongoDB answers them (deploy/local/mongodb_indexes.py).

    python -m deploy.local.mongodb_server [nx-27017 arguments]
"""

import logging
import sys

from nx_27017.nx_27017 import main

from deploy.local import mongodb_indexes

if __name__ == "__main__":
    # nx-27017 calls logging.basicConfig itself; configuring first makes that a no-op.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    sys.argv[0] = "nx-27017"
    mongodb_indexes.install()
    sys.exit(main())
