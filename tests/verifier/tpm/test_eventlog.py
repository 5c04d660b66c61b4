"""TCG PC Client event logs: six real logs replay to the PCR values published with them
(tests/fixtures/tpm/eventlogs/README.md), every parsing rule has a log that breaks it, and
arbitrary or mutated bytes raise only MalformedEvidence or EvidenceTooLarge.

Logs that no machine wrote are built here by the PC Client profile's layout (``agile_log``,
``legacy_log``), independently of the parser.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verifier.errors import EvidenceTooLarge, MalformedEvidence
from verifier.tpm import eventlog
from verifier.tpm.eventlog import (
    EVENT_TYPES,
    Event,
    EventLog,
    parse_event_log,
    replay_violations,
)

FIXTURES = Path(__file__).resolve().parent.parent.parent / "fixtures" / "tpm" / "eventlogs"
EXPECTED = json.loads((FIXTURES / "expected_pcrs.json").read_text())
LOGS = sorted(EXPECTED)
EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "300"))
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

SHA1, SHA256, SHA384 = 0x0004, 0x000B, 0x000C
SIZES = {SHA1: 20, SHA256: 32, SHA384: 48, 0x0012: 32}
EV_NO_ACTION, EV_SEPARATOR, EV_IPL, EV_POST_CODE = 3, 4, 0xD, 1


def raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def published(name: str) -> dict[str, dict[int, bytes]]:
    return {
        bank: {int(i): bytes.fromhex(h) for i, h in pcrs.items()}
        for bank, pcrs in EXPECTED[name]["pcrs"].items()
    }


# --- a writer of logs, by the profile's layout ---------------------------------------------


def spec_id(algs: list[tuple[int, int]], vendor: bytes = b"", **fields: int) -> bytes:
    head = struct.pack(
        "<16sIBBBBI",
        b"Spec ID Event03\0",
        fields.get("platform_class", 0),
        fields.get("minor", 0),
        fields.get("major", 2),
        0,
        fields.get("uintn", 2),
        fields.get("count", len(algs)),
    )
    body = b"".join(struct.pack("<HH", alg, size) for alg, size in algs)
    return head + body + bytes([len(vendor)]) + vendor


def sha1_event(pcr: int, event_type: int, digest: bytes, data: bytes) -> bytes:
    return struct.pack("<II20sI", pcr, event_type, digest, len(data)) + data


def event2(
    pcr: int, event_type: int, digests: list[tuple[int, bytes]], data: bytes, count: int = -1
) -> bytes:
    head = struct.pack("<III", pcr, event_type, len(digests) if count < 0 else count)
    body = b"".join(struct.pack("<H", alg) + digest for alg, digest in digests)
    return head + body + struct.pack("<I", len(data)) + data


def measured(data: bytes, algs: tuple[int, ...] = (SHA1, SHA256)) -> list[tuple[int, bytes]]:
    names = {SHA1: "sha1", SHA256: "sha256", SHA384: "sha384", 0x0012: "sha256"}
    return [(alg, hashlib.new(names[alg], data).digest()) for alg in algs]


def agile_log(*events: bytes, algs: tuple[int, ...] = (SHA1, SHA256)) -> bytes:
    header = spec_id([(alg, SIZES[alg]) for alg in algs])
    return sha1_event(0, EV_NO_ACTION, bytes(20), header) + b"".join(events)


def locality(value: int, pcr: int = 0, algs: tuple[int, ...] = (SHA1, SHA256)) -> bytes:
    data = b"StartupLocality\0" + bytes([value])
    return event2(pcr, EV_NO_ACTION, [(a, bytes(SIZES[a])) for a in algs], data)


def extend(pcr: int, data: bytes, algs: tuple[int, ...] = (SHA1, SHA256)) -> bytes:
    return event2(pcr, EV_IPL, measured(data, algs), data)


def replay_by_hand(start: bytes, name: str, measurements: list[bytes]) -> bytes:
    value = start
    for data in measurements:
        value = hashlib.new(name, value + hashlib.new(name, data).digest()).digest()
    return value


def malformed(data: bytes) -> str:
    with pytest.raises(MalformedEvidence) as caught:
        parse_event_log(data)
    assert type(caught.value) is MalformedEvidence
    return caught.value.message


# --- real logs -----------------------------------------------------------------------------


def test_fixtures_are_the_files_the_readme_names() -> None:
    for line in (FIXTURES / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        assert hashlib.sha256(raw(name)).hexdigest() == digest, name
    assert set(LOGS) == {name for name in os.listdir(FIXTURES) if name.endswith(".bin")}


@pytest.mark.parametrize("name", LOGS)
def test_real_log_replays_to_the_published_pcrs(name: str) -> None:
    log = parse_event_log(raw(name))
    assert log.format == "tcg-pc-client"
    quoted = published(name)
    for bank, pcrs in quoted.items():
        replayed = log.replay(bank)
        for index, value in pcrs.items():
            assert replayed[index] == value, f"{name} {bank} PCR {index}"
    assert replay_violations(log, quoted) == []


@pytest.mark.parametrize(
    ("name", "events", "banks"),
    [
        ("gotpmtools_ubuntu-2404-amd-sevsnp.bin", 117, ("sha1", "sha256", "sha384")),
        ("gotpmtools_gdc-host.bin", 159, ("sha256",)),
        ("gotpmtools_glinux-alex.bin", 29, ("sha1", "sha256")),
        ("gotpmtools_debian-10.bin", 25, ("sha1",)),
        ("gotpmtools_arch-linux-workstation.bin", 25, ("sha1", "sha256")),
        ("gotpmtools_eventlogwithsp800155.bin", 54, ("sha1", "sha256", "sha384")),
    ],
)
def test_real_log_shape(name: str, events: int, banks: tuple[str, ...]) -> None:
    log = parse_event_log(raw(name))
    assert len(log.events) == events
    assert log.banks == banks
    for event in log.events:
        assert 0 <= event.pcr <= 23
        assert event.type_name == EVENT_TYPES.get(event.type, f"EV_0x{event.type:08X}")


def test_a_changed_digest_is_named_by_bank_and_pcr() -> None:
    data = bytearray(raw("gotpmtools_ubuntu-2404-amd-sevsnp.bin"))
    log = parse_event_log(bytes(data))
    kernel = next(e for e in log.events if (e.description() or "").startswith("kernel_cmdline"))
    offset = bytes(data).index(kernel.digests["sha256"])
    data[offset] ^= 1
    changed = parse_event_log(bytes(data))
    messages = replay_violations(changed, published("gotpmtools_ubuntu-2404-amd-sevsnp.bin"))
    assert len(messages) == 1
    assert messages[0].startswith("pcr 8 (sha256): the log replays to ")
    quoted = published("gotpmtools_ubuntu-2404-amd-sevsnp.bin")["sha256"][8]
    assert messages[0].endswith(f", the quote has {quoted.hex()}")


def test_a_log_cut_at_an_event_boundary_parses_but_does_not_replay() -> None:
    name = "gotpmtools_ubuntu-2404-amd-sevsnp.bin"
    data = raw(name)
    last = parse_event_log(data).events[-1]
    cut = data[: len(data) - (12 + 2 * 3 + 20 + 32 + 48 + 4 + len(last.data))]
    shorter = parse_event_log(cut)
    assert len(shorter.events) == len(parse_event_log(data).events) - 1
    assert [m.split(":")[0] for m in replay_violations(shorter, published(name))] == [
        "pcr 5 (sha1)",
        "pcr 5 (sha256)",
    ]


def test_startup_locality_sets_pcr0_start_on_a_real_log() -> None:
    name = "gotpmtools_gdc-host.bin"
    data = raw(name)
    log = parse_event_log(data)
    event = next(e for e in log.events if e.description() == "StartupLocality 3")
    record = event2(0, EV_NO_ACTION, [(SHA256, event.digests["sha256"])], event.data)
    assert record in data
    without = parse_event_log(data.replace(record, b"", 1))
    messages = replay_violations(without, published(name))
    assert [m.split(":")[0] for m in messages] == ["pcr 0 (sha256)"]


@pytest.mark.parametrize("name", LOGS)
@pytest.mark.parametrize("cut", [1, 3, 17, 40])
def test_truncated_real_logs_are_malformed(name: str, cut: int) -> None:
    malformed(raw(name)[:-cut])


@pytest.mark.parametrize("name", LOGS)
@pytest.mark.parametrize("tail", [b"\0", bytes(4), bytes(31), b"\xff" * 12])
def test_trailing_bytes_are_malformed(name: str, tail: bytes) -> None:
    malformed(raw(name) + tail)


def test_replaying_a_bank_the_log_lacks_is_our_error() -> None:
    log = parse_event_log(raw("gotpmtools_debian-10.bin"))
    with pytest.raises(MalformedEvidence, match="no sha256 digests"):
        log.replay("sha256")
    # the quote's sha256 bank cannot be compared with a SHA-1-only log: nothing reported
    assert replay_violations(log, {"sha256": {0: bytes(32)}}) == []
    assert replay_violations(log, {"sha1": {0: bytes(20)}}) != []


def test_descriptions_of_real_events() -> None:
    log = parse_event_log(raw("gotpmtools_ubuntu-2404-amd-sevsnp.bin"))
    described = [e.description() for e in log.events]
    assert described[:3] == ["Spec ID Event03", "GCE Virtual Firmware v2", "GCE NonHostInfo"]
    assert {"SecureBoot", "dbx", "separator 00000000"} <= set(described)
    assert "\\EFI\\ubuntu\\grubx64.efi" in described
    assert (
        "kernel_cmdline: /vmlinuz-6.8.0-1010-gcp root=PARTUUID=8270f3c9-b4e4-4345-80ee-"
        "5a62db7ebf3f ro console=ttyS0,115200 panic=-1"
    ) in described
    legacy = parse_event_log(raw("gotpmtools_debian-10.bin"))
    assert legacy.events[0].type_name == "EV_S_CRTM_VERSION"
    assert legacy.events[0].description() == "GCE Virtual Firmware v1"
    for name in LOGS:
        for event in parse_event_log(raw(name)).events:
            text = event.description()
            assert text is None or (text.isprintable() and 0 < len(text) <= 160)


# --- rules, on built logs ------------------------------------------------------------------


def test_built_log_replays_as_computed_by_hand() -> None:
    log = parse_event_log(agile_log(extend(8, b"one"), extend(8, b"two"), extend(9, b"x")))
    assert log.replay("sha256") == {
        8: replay_by_hand(bytes(32), "sha256", [b"one", b"two"]),
        9: replay_by_hand(bytes(32), "sha256", [b"x"]),
    }
    assert log.replay("sha1")[8] == replay_by_hand(bytes(20), "sha1", [b"one", b"two"])


@pytest.mark.parametrize(("value", "start"), [(0, bytes(32)), (3, bytes(31) + b"\3"),
                                              (4, bytes(31) + b"\4")])  # fmt: skip
def test_startup_locality(value: int, start: bytes) -> None:
    log = parse_event_log(agile_log(locality(value), extend(0, b"crtm")))
    assert log.replay("sha256")[0] == replay_by_hand(start, "sha256", [b"crtm"])
    assert log.events[1].type_name == "EV_NO_ACTION"
    assert log.events[1].description() == f"StartupLocality {value}"


def test_startup_locality_alone_accounts_for_pcr0() -> None:
    assert parse_event_log(agile_log(locality(3))).replay("sha1") == {0: bytes(19) + b"\3"}


@pytest.mark.parametrize(
    ("log", "message"),
    [
        (agile_log(locality(2)), "locality 0, 3 or 4"),
        (agile_log(locality(3, pcr=1)), "expected PCR 0"),
        (agile_log(locality(3), locality(3)), "after another one"),
        (agile_log(extend(0, b"crtm"), locality(3)), "after an extension of PCR 0"),
    ],
)
def test_startup_locality_rules(log: bytes, message: str) -> None:
    assert message in malformed(log)


def test_no_action_events_are_not_extended() -> None:
    other = event2(0, EV_NO_ACTION, measured(b"x"), b"SP800-155 Event3" + bytes(8))
    log = parse_event_log(agile_log(other, extend(1, b"a")))
    assert log.replay("sha256") == {1: replay_by_hand(bytes(32), "sha256", [b"a"])}


def test_an_unknown_algorithm_is_skipped_by_its_declared_size() -> None:
    header = spec_id([(SHA1, 20), (0x7777, 7), (SHA256, 32)])
    digests = [*measured(b"a")[:1], (0x7777, b"\x01" * 7), *measured(b"a")[1:]]
    data = sha1_event(0, EV_NO_ACTION, bytes(20), header) + event2(4, EV_IPL, digests, b"a")
    log = parse_event_log(data)
    assert log.banks == ("sha1", "sha256")
    assert set(log.events[1].digests) == {"sha1", "sha256"}
    assert log.replay("sha256") == {4: replay_by_hand(bytes(32), "sha256", [b"a"])}


def test_sm3_is_carried_but_not_replayed() -> None:
    log = parse_event_log(agile_log(extend(4, b"a", (SHA256, 0x0012)), algs=(SHA256, 0x0012)))
    assert log.banks == ("sha256",)


def test_legacy_log_with_startup_locality_and_separator() -> None:
    sep = sha1_event(0, EV_SEPARATOR, hashlib.sha1(bytes(4)).digest(), bytes(4))  # noqa: S324
    loc = sha1_event(0, EV_NO_ACTION, bytes(20), b"StartupLocality\0\3")
    log = parse_event_log(loc + sep)
    assert log.banks == ("sha1",)
    assert log.replay("sha1") == {0: replay_by_hand(bytes(19) + b"\3", "sha1", [bytes(4)])}
    assert log.events[1].description() == "separator 00000000"


H = sha1_event(0, EV_NO_ACTION, bytes(20), spec_id([(SHA1, 20), (SHA256, 32)]))
GOOD = extend(4, b"a")
ZEROS = [(SHA1, bytes(20)), (SHA256, bytes(32))]


MALFORMED = [
        (b"", "empty"),
        (H[:10], "needs 32 bytes"),
        (sha1_event(1, EV_NO_ACTION, bytes(20), spec_id([(SHA1, 20)])), "EV_NO_ACTION in PCR 0"),
        (sha1_event(0, EV_IPL, bytes(20), spec_id([(SHA1, 20)])), "EV_NO_ACTION in PCR 0"),
        (sha1_event(0, EV_NO_ACTION, b"\1" * 20, spec_id([(SHA1, 20)])), "zero digest"),
        (sha1_event(0, 3, bytes(20), spec_id([(SHA1, 20)], major=1)), "version 1.0"),
        (sha1_event(0, 3, bytes(20), spec_id([(SHA1, 20)], uintn=3)), "uintnSize 3"),
        (sha1_event(0, 3, bytes(20), spec_id([(SHA1, 20)], platform_class=2)), "platformClass"),
        (sha1_event(0, 3, bytes(20), spec_id([])), "declares 0 algorithms"),
        (sha1_event(0, 3, bytes(20), spec_id([(SHA1, 20)] * 17)), "declares 17 algorithms"),
        (sha1_event(0, 3, bytes(20), spec_id([(SHA1, 20), (SHA1, 20)])), "twice"),
        (sha1_event(0, 3, bytes(20), spec_id([(SHA256, 20)])), "it has 32"),
        (sha1_event(0, 3, bytes(20), spec_id([(0x0012, 20)])), "it has 32"),
        (sha1_event(0, 3, bytes(20), spec_id([(0x7777, 0)])), "with 0 bytes"),
        (sha1_event(0, 3, bytes(20), spec_id([(0x7777, 129)])), "with 129 bytes"),
        (sha1_event(0, 3, bytes(20), spec_id([(SHA1, 20)], count=2)), "Spec ID algorithm"),
        (sha1_event(0, 3, bytes(20), spec_id([(SHA1, 20)]) + b"\0"), "after the Spec ID"),
        (sha1_event(0, 3, bytes(20), spec_id([(SHA1, 20)])[:-1] + b"\5"), "vendorInfo"),
        (H + event2(4, EV_IPL, measured(b"a")[:1], b"a"), "has 1 digests"),
        (H + event2(4, EV_IPL, [*measured(b"a"), *measured(b"a")[:1]], b"a"), "has 3 digests"),
        (H + event2(4, EV_IPL, measured(b"a")[:1] * 2, b"a"), "twice"),
        (H + event2(4, EV_IPL, measured(b"a", (SHA1, SHA384)), b"a"), "does not declare"),
        (H + struct.pack("<III", 4, EV_IPL, 2), "digest algorithm needs 2 bytes"),
        (H + event2(24, EV_IPL, measured(b"a"), b"a"), "names PCR 24"),
        (H + event2(0xFFFFFFFF, EV_IPL, measured(b"a"), b"a"), "names PCR 4294967295"),
        (sha1_event(24, EV_IPL, bytes(20), b""), "names PCR 24"),
        (H + GOOD + event2(0, 3, ZEROS, spec_id([(SHA1, 20)])), "a second Spec ID event"),
        (sha1_event(0, 8, bytes(20), b"v") + H, "Spec ID event after the first"),
        (H + GOOD[:-1], "event data needs 1 bytes"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "message"), MALFORMED, ids=[m for _, m in MALFORMED])
def test_malformed_logs(data: bytes, message: str) -> None:
    assert message in malformed(data)


def test_the_good_built_log_parses() -> None:  # the base of the table above is not itself bad
    assert len(parse_event_log(H + GOOD).events) == 2


def test_oversize_log() -> None:
    big = agile_log(event2(4, EV_IPL, measured(b"a"), bytes(64 * 1024)))
    with pytest.raises(EvidenceTooLarge, match="at most 65536"):
        parse_event_log(big)
    overhead = len(agile_log(event2(4, EV_IPL, measured(b"a"), b"")))
    exact = agile_log(event2(4, EV_IPL, measured(b"a"), bytes(64 * 1024 - overhead)))
    assert len(exact) == 64 * 1024
    assert len(parse_event_log(exact).events) == 2


def test_oversize_event_data_claim() -> None:
    claim = struct.pack("<III", 4, EV_IPL, 2) + b"".join(
        struct.pack("<H", a) + d for a, d in measured(b"a")
    )
    with pytest.raises(EvidenceTooLarge, match="claims 4294967295 bytes"):
        parse_event_log(H + claim + struct.pack("<I", 0xFFFFFFFF))
    with pytest.raises(EvidenceTooLarge, match="claims 65537 bytes"):
        parse_event_log(sha1_event(0, EV_IPL, bytes(20), b"")[:-4] + struct.pack("<I", 65537))


def test_event_count_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    # 64 KiB cannot hold more than MAX_EVENTS events of the smallest size; lowering the bound
    # shows that it is enforced, in both formats.
    monkeypatch.setattr(eventlog, "MAX_EVENTS", 3)
    assert len(parse_event_log(agile_log(GOOD, GOOD)).events) == 3
    with pytest.raises(EvidenceTooLarge, match="more than 3 events"):
        parse_event_log(agile_log(GOOD, GOOD, GOOD))
    one = sha1_event(4, EV_IPL, bytes(20), b"")
    with pytest.raises(EvidenceTooLarge, match="more than 3 events"):
        parse_event_log(one * 4)


# --- descriptions --------------------------------------------------------------------------


def event(event_type: int, data: bytes) -> Event:
    return Event(0, event_type, eventlog.type_name(event_type), {}, data)


def variable(name: str, value: bytes = b"\1") -> bytes:
    encoded = name.encode("utf-16-le")
    return bytes(16) + struct.pack("<QQ", len(name), len(value)) + encoded + value


@pytest.mark.parametrize(
    ("event_type", "data", "text"),
    [
        (0x8, "GCE Virtual Firmware v2\0".encode("utf-16-le"), "GCE Virtual Firmware v2"),
        (EV_POST_CODE, b"ACPI DATA", "ACPI DATA"),
        (0x80000001, variable("SecureBoot"), "SecureBoot"),
        (0x800000E0, variable("db", b"\0" * 40), "db"),
        (EV_IPL, b"kernel_cmdline: ro quiet\0", "kernel_cmdline: ro quiet"),
        (EV_IPL, "Linux initrd\0".encode("utf-16-le"), "Linux initrd"),
        (EV_IPL, b"evil\x1b[31m\x00", "evil?[31m"),
        (EV_IPL, "abc\u202edef".encode(), "abc?def"),
        (EV_IPL, b"\x01\x02\x03\x04\x05\x06\x07\xff\xfe", None),
        (EV_SEPARATOR, b"\xff\xff\xff\xff", "separator ffffffff"),
        (0x6, struct.pack("<II", 0x8F3B22ED, 26) + bytes(26), "tag 0x8f3b22ed, 26 bytes"),
        (0x6, b"\1\2", None),
        (EV_NO_ACTION, b"StartupLocality\0\3", "StartupLocality 3"),
        (0x80000007, b"Exit Boot Services Invocation", "Exit Boot Services Invocation"),
        (0x8000000A, b"\x04ABCD" + bytes(16), "ABCD"),
        (0x80000008, bytes(16), "16 bytes"),
        (0x1234, b"hello", "hello"),
        (0x1234, b"", None),
        (0x80000001, b"short", None),
        (EV_IPL, b"x" * 500, "x" * 159 + "…"),
    ],
)
def test_description(event_type: int, data: bytes, text: str | None) -> None:
    assert event(event_type, data).description() == text


def test_unknown_type_name() -> None:
    assert eventlog.type_name(0x1234) == "EV_0x00001234"
    assert eventlog.type_name(0x80000003) == "EV_EFI_BOOT_SERVICES_APPLICATION"


@SETTINGS
@given(st.sampled_from([*EVENT_TYPES, 0x1234, 0xFFFFFFFF]), st.binary(max_size=600))
def test_description_never_raises_nor_returns_unprintable(event_type: int, data: bytes) -> None:
    text = event(event_type, data).description()
    assert text is None or (text.isprintable() and len(text) <= 160)


@SETTINGS
@given(st.text(max_size=80))
def test_description_of_any_text_is_printable(text: str) -> None:
    for data in (text.encode("utf-8"), text.encode("utf-16-le", errors="surrogatepass")):
        described = event(EV_IPL, data).description()
        assert described is None or described.isprintable()


# --- fuzz ----------------------------------------------------------------------------------


def parse_any(data: bytes) -> EventLog | None:
    try:
        log = parse_event_log(data)
    except (MalformedEvidence, EvidenceTooLarge):
        return None
    for bank in log.banks:
        log.replay(bank)
    for item in log.events:
        item.description()
    return log


@SETTINGS
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_raise_only_our_errors(data: bytes) -> None:
    parse_any(data)
    parse_any(H + data)


@SETTINGS
@given(
    st.sampled_from(LOGS),
    st.lists(st.tuples(st.integers(0, 50_429), st.integers(0, 255)), min_size=1, max_size=8),
)
def test_mutated_real_logs_raise_only_our_errors(name: str, changes: list[tuple[int, int]]) -> None:
    data = bytearray(raw(name))
    for offset, value in changes:
        data[offset % len(data)] = value
    log = parse_any(bytes(data))
    if log is not None:
        replay_violations(log, published(name))


@SETTINGS
@given(st.sampled_from(LOGS), st.integers(0, 50_429), st.binary(min_size=1, max_size=64))
def test_spliced_real_logs_raise_only_our_errors(name: str, at: int, insert: bytes) -> None:
    data = raw(name)
    at %= len(data)
    parse_any(data[:at] + insert + data[at:])
    parse_any(data[:at])
