"""Linux IMA binary measurement lists.

Real material: eight measurement lines written by Linux kernels (keylime's test data,
tests/fixtures/tpm/eventlogs/README.md), turned into the binary form here by the kernel's
layout (``ima_measurements_show``): the parser accepts a line only if the SHA-1 of the
template data it rebuilds is the template digest the kernel computed. No real binary log was
found with its PCR 10 values, so replay (SHA-1 and SHA-256 banks, violations, the legacy
``ima`` template) is checked on logs built here by the kernel's rules, written out again in
this file (``template_data``, ``expected_pcr10``) rather than taken from the parser.
"""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verifier.errors import EvidenceTooLarge, MalformedEvidence
from verifier.tpm.eventlog import (
    IMA_MEASUREMENT,
    IMA_VIOLATION,
    parse_event_log,
    parse_ima_log,
    replay_violations,
)

FIXTURES = Path(__file__).resolve().parent.parent.parent / "fixtures" / "tpm" / "eventlogs"
ASCII = (FIXTURES / "keylime_ima_ascii_runtime_measurements.txt").read_text().splitlines()
EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "300"))
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def u32(value: int) -> bytes:
    return struct.pack("<I", value)


def field(data: bytes) -> bytes:
    return u32(len(data)) + data


def template_data(algo: str, digest: bytes, path: str, *extra: bytes) -> bytes:
    """ima-ng, ima-sig, ima-buf: d-ng ("algo:" NUL digest), n-ng (path NUL), then extras."""
    fields = [algo.encode() + b":\0" + digest, path.encode() + b"\0", *extra]
    return b"".join(field(f) for f in fields)


def entry(pcr: int, template: str, data: bytes, digest: bytes | None = None) -> bytes:
    if digest is None:
        digest = hashlib.sha1(data).digest()  # noqa: S324 - the kernel's template digest
    return u32(pcr) + digest + field(template.encode()) + field(data)


def ima_entry(file_digest: bytes, path: str, *, violation: bool = False) -> bytes:
    """The legacy "ima" template: digest [20] | path length | path, hashed with the path
    zero-padded to 256 bytes and no lengths."""
    hashed = hashlib.sha1(file_digest + path.encode().ljust(256, b"\0")).digest()  # noqa: S324
    digest = bytes(20) if violation else hashed
    return u32(10) + digest + field(b"ima") + file_digest + field(path.encode())


def from_ascii(line: str) -> bytes:
    pcr, digest, template, algo_digest, path, *rest = line.split(" ")
    algo, hexdigest = algo_digest.split(":")
    extra = [bytes.fromhex(rest[0]) if rest else b""] if template in {"ima-sig", "ima-buf"} else []
    data = template_data(algo, bytes.fromhex(hexdigest), path, *extra)
    return entry(int(pcr), template, data, bytes.fromhex(digest))


def expected_pcr10(templates: list[bytes | None], name: str) -> bytes:
    """What the kernel leaves in PCR 10: each template data hashed by the bank, a violation
    (None) extended as all-ones."""
    size = hashlib.new(name).digest_size
    value = bytes(size)
    for data in templates:
        extended = b"\xff" * size if data is None else hashlib.new(name, data).digest()
        value = hashlib.new(name, value + extended).digest()
    return value


def test_fixture_checksum() -> None:
    sums = dict(
        reversed(line.split()) for line in (FIXTURES / "SHA256SUMS").read_text().splitlines()
    )
    data = (FIXTURES / "keylime_ima_ascii_runtime_measurements.txt").read_bytes()
    assert hashlib.sha256(data).hexdigest() == sums["keylime_ima_ascii_runtime_measurements.txt"]


def test_real_kernel_lines_parse_and_their_template_digests_verify() -> None:
    log = parse_ima_log(b"".join(from_ascii(line) for line in ASCII))
    assert log.format == "ima"
    assert [e.type_name for e in log.events] == ["ima-sig"] * 5 + ["ima-buf"] + ["ima-ng"] * 2
    assert [e.description() for e in log.events][:2] == [
        "boot_aggregate",
        "/lib/modules/5.4.48-openpower1/kernel/drivers/usb/common/usb-common.ko",
    ]
    assert log.events[5].description() == ".ima"
    assert all(e.type == IMA_MEASUREMENT and e.pcr == 10 for e in log.events)
    for line, event in zip(ASCII, log.events, strict=True):
        assert event.digests["sha1"].hex() == line.split(" ")[1]
    # SHA-1 bank: the template digests the kernel wrote, folded
    value = bytes(20)
    for line in ASCII:
        value = hashlib.sha1(value + bytes.fromhex(line.split(" ")[1])).digest()  # noqa: S324
    assert log.replay("sha1") == {10: value}


@pytest.mark.parametrize("index", range(len(ASCII)))
def test_a_changed_path_or_digest_no_longer_matches_the_kernels_template_digest(
    index: int,
) -> None:
    line = ASCII[index]
    changed = line.replace(line.split(" ")[4], line.split(" ")[4] + "x", 1)
    with pytest.raises(MalformedEvidence, match="is not the SHA-1 of its template data"):
        parse_ima_log(from_ascii(changed))
    hexdigest = line.split(" ")[3].split(":")[1]
    flipped = line.replace(hexdigest, ("0" if hexdigest[0] != "0" else "1") + hexdigest[1:])
    with pytest.raises(MalformedEvidence, match="is not the SHA-1 of its template data"):
        parse_ima_log(from_ascii(flipped))


def test_sha256_bank_and_violations_by_the_kernels_rules() -> None:
    first = template_data("sha256", hashlib.sha256(b"boot").digest(), "boot_aggregate")
    second = template_data("sha256", hashlib.sha256(b"/bin/sh").digest(), "/usr/bin/sh")
    opened = template_data("sha256", bytes(32), "/var/log/written")
    log = parse_ima_log(
        entry(10, "ima-ng", first)
        + entry(10, "ima-ng", opened, bytes(20))  # a violation: all-zero template digest
        + entry(10, "ima-ng", second)
    )
    assert [e.type for e in log.events] == [IMA_MEASUREMENT, IMA_VIOLATION, IMA_MEASUREMENT]
    assert log.events[1].description() == "violation: /var/log/written"
    templates: list[bytes | None] = [first, None, second]
    for bank in ("sha1", "sha256", "sha384", "sha512"):
        assert log.replay(bank) == {10: expected_pcr10(templates, bank)}
    quoted = {"sha256": {10: expected_pcr10(templates, "sha256")}}
    assert replay_violations(log, quoted) == []
    # a violation that the log hid (extended as a measurement of zeros) does not replay
    hidden = {"sha256": {10: expected_pcr10([first, opened, second], "sha256")}}
    assert [m.split(":")[0] for m in replay_violations(log, hidden)] == ["pcr 10 (sha256)"]


def test_legacy_ima_template() -> None:
    file_digest = hashlib.sha1(b"/sbin/init").digest()  # noqa: S324
    log = parse_ima_log(
        ima_entry(file_digest, "/sbin/init") + ima_entry(bytes(20), "/x", violation=True)
    )
    padded = file_digest + b"/sbin/init".ljust(256, b"\0")
    assert log.events[0].type_name == "ima"
    assert log.events[0].description() == "/sbin/init"
    assert log.events[1].description() == "violation: /x"
    assert log.replay("sha256") == {10: expected_pcr10([padded, None], "sha256")}
    with pytest.raises(MalformedEvidence, match="at most 255"):
        parse_ima_log(ima_entry(file_digest, "/" * 256))


def test_another_pcr_is_accounted_for_separately() -> None:
    data = template_data("sha256", bytes(32), "/etc/x")
    log = parse_ima_log(entry(10, "ima-ng", data) + entry(11, "ima-ng", data))
    assert sorted(log.replay("sha256")) == [10, 11]


def test_an_ima_log_is_not_a_firmware_log() -> None:
    with pytest.raises(MalformedEvidence):
        parse_event_log(from_ascii(ASCII[-1]))


GOOD = entry(10, "ima-ng", template_data("sha256", bytes(32), "/a"))
MALFORMED = [
    (b"", "empty"),
    (GOOD[:-1], "template data needs"),
    (GOOD + b"\0", "PCR index needs 4"),
    (entry(24, "ima-ng", template_data("sha256", bytes(32), "/a")), "PCR 24"),
    (entry(10, "IMA NG", template_data("sha256", bytes(32), "/a")), "template name"),
    (entry(10, "", b""), "template name"),
    (entry(10, "x" * 16, b""), "template name"),
    (entry(10, "ima-ng", field(b"abc")[:-1]), "field needs 3 bytes"),
    (entry(10, "ima-ng", b"\0\0"), "field length needs 4"),
    (entry(10, "ima-ng", field(b"") * 17), "over 16 fields"),
    (u32(10) + bytes(20) + u32(0xFFFFFFFF), "template name needs 4294967295"),
    (u32(10) + b"\1" * 20 + field(b"ima") + bytes(20) + u32(3) + b"ab", "ima path needs 3"),
]


@pytest.mark.parametrize(("data", "message"), MALFORMED, ids=[m for _, m in MALFORMED])
def test_malformed_ima_logs(data: bytes, message: str) -> None:
    with pytest.raises(MalformedEvidence, match=message) as caught:
        parse_ima_log(data)
    assert type(caught.value) is MalformedEvidence
    assert len(parse_ima_log(GOOD).events) == 1


def test_oversize_ima_log() -> None:
    big = entry(10, "ima-ng", field(bytes(64 * 1024)))
    with pytest.raises(EvidenceTooLarge, match="at most 65536"):
        parse_ima_log(big)


@SETTINGS
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_raise_only_our_errors(data: bytes) -> None:
    for candidate in (data, GOOD + data, u32(10) + data):
        try:
            log = parse_ima_log(candidate)
        except (MalformedEvidence, EvidenceTooLarge):
            continue
        for event in log.events:
            text = event.description()
            assert text is None or text.isprintable()


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), min_size=1, max_size=6))
def test_mutated_real_lines_raise_only_our_errors(changes: list[tuple[int, int]]) -> None:
    data = bytearray(b"".join(from_ascii(line) for line in ASCII))
    for offset, value in changes:
        data[offset % len(data)] = value
    try:
        log = parse_ima_log(bytes(data))
    except (MalformedEvidence, EvidenceTooLarge):
        return
    log.replay("sha256")
