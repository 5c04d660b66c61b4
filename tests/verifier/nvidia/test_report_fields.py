"""The report's project and SKU opaque fields (17, 18, 15: what names a GPU's VBIOS RIM), read
leniently from NVIDIA's real reports: text or None, never an error."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.verifier.nvidia.support import JSON_FILES, hex_report, json_device
from verifier.nvidia import parse_report
from verifier.nvidia.report import OpaqueField


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (hex_report(), ("1010", "0200", "882")),
        (json_device(JSON_FILES[0])[0], ("G520", "0200", "885")),
        (json_device(JSON_FILES[1])[0], ("G525", "0220", "886")),
        (json_device(JSON_FILES[2])[0], (None, None, None)),  # an NVSwitch reports none
    ],
)
def test_project_fields_of_nvidias_reports(data: bytes, expected: tuple[str | None, ...]) -> None:
    report = parse_report(data)
    assert (report.project, report.project_sku, report.chip_sku) == expected


@pytest.mark.parametrize("value", [b"", b"\x00", b"\xff12\x00", b"12\x07", b"  \x00"])
def test_unreadable_project_fields_read_as_none(value: bytes) -> None:
    report = parse_report(hex_report())
    opaque = {**report.opaque, int(OpaqueField.PROJECT): value}
    assert dataclasses.replace(report, opaque=opaque).project is None
    assert report.opaque_text(999) is None


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(
        st.binary(max_size=24) | st.text(max_size=12).map(lambda t: t.encode("utf-8", "replace")),
        min_size=3,
        max_size=3,
    ),
    field=st.sampled_from([15, 17, 18, 3, 999]),
)
def test_any_opaque_bytes_read_as_printable_ascii_or_none(values: list[bytes], field: int) -> None:
    """The lenient accessors never raise: any bytes in fields 15, 17 and 18 (or any field
    read with opaque_text) give None or stripped printable ASCII without a NUL."""
    report = parse_report(hex_report())
    opaque = {**report.opaque, 15: values[0], 17: values[1], 18: values[2]}
    odd = dataclasses.replace(report, opaque=opaque)
    for text in (odd.chip_sku, odd.project, odd.project_sku, odd.opaque_text(field)):
        assert text is None or (
            text.isascii() and text.isprintable() and text == text.strip() and text
        )
    assert odd.project == odd.opaque_text(OpaqueField.PROJECT)
