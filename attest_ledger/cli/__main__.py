"""``python -m attest_ledger.cli``: the same as the ``attest-ledger`` command."""

import sys

from attest_ledger.cli import main

sys.exit(main())
