"""The published-sample readers (`verifier.tpm.from_json`: vaportpm and trustee JSON;
`verifier.nvidia.from_json`: NVIDIA's evidence JSON) are parsers of outside input too, and
`attest-ledger verify` feeds them whatever file it is given: arbitrary text, real samples
with any field removed or replaced by any JSON value, and nesting deep enough to exhaust the
JSON parser's recursion must only ever raise the verifier's own errors."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verifier import VerifierError
from verifier import nvidia as nvidia_scheme
from verifier import tpm as tpm_scheme

FIXTURES = Path(__file__).parents[1] / "fixtures"
SAMPLES = {
    "tpm": [
        (FIXTURES / "tpm" / name).read_text()
        for name in (
            "vaportpm_test-nitro-fixture.json",
            "vaportpm_test-gcp-amd-fixture.json",
            "trustee_tpm_evidence.json",
        )
    ],
    "nvidia": [
        (FIXTURES / "nvidia" / name).read_text()
        for name in (
            "nv_sdk_hopper_evidence.json",
            "nv_veraison_blackwell-evidence.json",
            "nv_sdk_switch_evidence_ls10.json",
        )
    ],
}
READERS = {"tpm": tpm_scheme.from_json, "nvidia": nvidia_scheme.from_json}
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def _read(reader: str, text: str) -> None:
    with contextlib.suppress(VerifierError):  # our own error: what a bad file must give
        READERS[reader](text)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``value`` (dict keys, list indexes)."""
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            out.extend(_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out.extend(_paths(item, (*prefix, index)))
    return out


def _replaced(value: Any, path: tuple[Any, ...], new: Any, *, delete: bool) -> Any:
    head, rest = path[0], path[1:]
    copy = dict(value) if isinstance(value, dict) else list(value)
    if rest:
        copy[head] = _replaced(copy[head], rest, new, delete=delete)
    elif delete:
        del copy[head]
    else:
        copy[head] = new
    return copy


@pytest.mark.parametrize("reader", sorted(READERS))
@SETTINGS
@given(text=st.text(max_size=300))
def test_arbitrary_text_raises_only_our_errors(reader: str, text: str) -> None:
    _read(reader, text)


@pytest.mark.parametrize("reader", sorted(READERS))
@SETTINGS
@given(data=st.data())
def test_samples_with_a_field_removed_or_replaced_raise_only_our_errors(
    reader: str, data: st.DataObject
) -> None:
    sample = json.loads(data.draw(st.sampled_from(SAMPLES[reader])))
    path = data.draw(st.sampled_from(_paths(sample)))
    delete = data.draw(st.booleans())
    new = None if delete else data.draw(JSON_VALUES)
    _read(reader, json.dumps(_replaced(sample, path, new, delete=delete)))


@pytest.mark.parametrize("reader", sorted(READERS))
def test_nesting_too_deep_for_the_json_parser_is_our_error(reader: str) -> None:
    with pytest.raises(VerifierError):
        READERS[reader]("[" * 100_000 + "]" * 100_000)
    with pytest.raises(VerifierError):
        READERS[reader]('{"a":' * 100_000 + "1" + "}" * 100_000)
