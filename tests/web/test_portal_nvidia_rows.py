"""The measurement table of a device page (web.portal_nvidia.measurement_rows), without a
database: a report's blocks against RIM measurements, each way a row can come out. The report
is built here field by field (SPDM 1.1 as verifier/nvidia/report.py reads it; the signature is
not checked by the page, so 96 zero bytes stand for it), with NVDEC0 disabled (opaque field
11 = 0x55) as a real report can say, which the simulated GPU never does."""

from __future__ import annotations

import hashlib

from verifier.nvidia import parse_report
from verifier.nvidia.rim import Rim, RimKind, RimMeasurement
from web.portal_nvidia import RimView, measurement_rows


def _report(values: dict[int, bytes], *, nvdec_disabled: bool) -> bytes:
    request = bytes([0x11, 0xE0, 0x01, 0xFF]) + b"\x01" * 32 + b"\x00"
    record = b"".join(
        bytes([n, 1]) + (3 + len(v)).to_bytes(2, "little") + b"\x01"
        + len(v).to_bytes(2, "little") + v
        for n, v in sorted(values.items())
    )  # fmt: skip
    opaque = (
        (11).to_bytes(2, "little") + (1).to_bytes(2, "little") + b"\x55" if nvdec_disabled else b""
    )
    response = (
        bytes([0x11, 0x60, 0, 0, len(values)]) + len(record).to_bytes(3, "little") + record
        + b"\x02" * 32 + len(opaque).to_bytes(2, "little") + opaque
    )  # fmt: skip
    return request + response + b"\x00" * 96


def _rim(kind: RimKind, measurements: dict[int, tuple[bytes, ...]]) -> RimView:
    raw = repr((kind, measurements)).encode()
    rim = Rim(
        raw=raw, kind=kind, tag_id="tag", version="1.2.3", product="GH100",
        measurements=tuple(RimMeasurement(i, f"m{i}", 48, alts)
                           for i, alts in sorted(measurements.items())),
        certificates=(),
    )  # fmt: skip
    return RimView(hashlib.sha256(raw).hexdigest(), True, rim, None, None, ())


def _value(n: int) -> bytes:
    return bytes([n]) * 48


def test_each_row_status() -> None:
    report = parse_report(
        _report({1: _value(1), 2: _value(2), 3: _value(3), 36: _value(36)}, nvdec_disabled=True)
    )
    rims = [
        _rim(RimKind.VBIOS, {0: (_value(9), _value(1)), 1: (_value(7),)}),  # block 1 ok, 2 not
        _rim(RimKind.DRIVER, {35: (_value(0),), 4: (_value(5),)}),  # 36: NVDEC; block 5 absent
        RimView("0" * 64, True, None, "malformed: not a RIM", None, ()),  # unreadable: no rows
    ]
    rows = {row.block: row for row in measurement_rows(report, rims)}
    assert {n: row.status for n, row in rows.items()} == {
        1: "matched", 2: "mismatched", 3: "unreferenced", 5: "missing", 36: "skipped",
    }  # fmt: skip
    assert rows[2].index == 1
    assert rows[2].references[0][3] == (_value(7).hex(),)
    assert rows[2].references[0][0] == "vbios RIM 1.2.3"
    assert rows[1].references[0][4] is True
    assert rows[5].value is None
    assert rows[3].references == ()


def test_nvdec_enabled_compares_index_35() -> None:
    report = parse_report(_report({36: _value(36)}, nvdec_disabled=False))
    (row,) = measurement_rows(report, [_rim(RimKind.DRIVER, {35: (_value(0),)})])
    assert row.status == "mismatched"
