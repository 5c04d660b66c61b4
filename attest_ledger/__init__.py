"""The application shell: command line, settings, and the glue between verifier and ledger."""
