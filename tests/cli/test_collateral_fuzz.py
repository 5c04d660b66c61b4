"""Every parser of Intel collateral the service reads (an operator's import file, a document a
worker attaches, a PCCS answer) only ever raises the project's own error, whatever the bytes
(issue #12; house rule: every parser is fuzzed)."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from attest_ledger.collateral import CollateralError, _crl_bytes, describe, documents_in_file


@given(st.binary(max_size=4096) | st.text(max_size=1024).map(str.encode))
@settings(max_examples=300, deadline=None)
def test_arbitrary_bytes_as_a_collateral_file_only_raise_our_error(data: bytes) -> None:
    try:
        documents = documents_in_file(data)
    except CollateralError:
        return
    for kind, document in documents:  # what it returns is keepable: each describes
        describe(kind, document)


@given(
    st.sampled_from(["tcb-info", "qe-identity", "crl", "certificate", "vcek", ""]),
    st.binary(max_size=2048) | st.text(max_size=512).map(str.encode),
)
@settings(max_examples=300, deadline=None)
def test_arbitrary_documents_of_any_kind_only_raise_our_error(kind: str, data: bytes) -> None:
    with contextlib.suppress(CollateralError):
        describe(kind, data)


@given(st.binary(max_size=2048) | st.text(max_size=512).map(str.encode))
@settings(max_examples=200, deadline=None)
def test_a_pccs_crl_answer_of_any_bytes_is_bytes_or_our_error(data: bytes) -> None:
    with contextlib.suppress(CollateralError):
        assert isinstance(_crl_bytes(data), bytes)


def test_json_shapes_that_once_looked_like_collateral() -> None:
    for data in (b'{"tcbInfo": [], "signature": "00"}', b'{"tcb_info": "x"}', b"[]",
                 b'{"enclaveIdentity": {"issueDate": 5}, "signature": "x"}'):  # fmt: skip
        with contextlib.suppress(CollateralError):
            for kind, document in documents_in_file(data):
                describe(kind, document)
