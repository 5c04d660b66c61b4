"""The report's project and SKU opaque fields (17, 18, 15: what names a GPU's VBIOS RIM), read
leniently from NVIDIA's real reports: text or None, never an error."""

from __future__ import annotations

import dataclasses

import pytest

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
