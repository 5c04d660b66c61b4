"""Proof bundles for regulators: writing one (:mod:`.export`), reading one with every read
bounded (:mod:`.archive`), and the two verifiers that must agree on every bundle: the
project's (:mod:`.verify`, ``attest-ledger verify-bundle``) and the standalone script shipped
inside each bundle (:mod:`.verify_bundle`, Python, cryptography and cbor2 only)."""
