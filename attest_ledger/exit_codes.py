"""Exit codes shared by every ``attest-ledger`` subcommand."""

EXIT_OK = 0
#: The evidence (or the ledger) was checked and rejected.
EXIT_REJECTED = 1
#: Usage, configuration or I/O error: nothing was checked.
EXIT_USAGE = 2
