"""The few DER reads the TPM scheme needs that cryptography does not give without warnings:
a certificate's issuer and subject as raw bytes (Google's 2018 vTPM CA names break RFC
5280's length rule, and cryptography warns on every read of them), and Google's GCE
instance extension (1.3.6.1.4.1.11129.2.1.21), which cryptography does not decode.

Definite lengths only (DER); every read is bounded by its enclosing element; any error is
``ValueError`` (callers turn it into their own).
"""

from __future__ import annotations

__all__ = ["gce_instance_info", "tbs_names"]

_SEQUENCE, _INTEGER, _UTF8 = 0x30, 0x02, 0x0C


def _element(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the element at ``offset``."""
    if offset + 2 > len(data):
        raise ValueError("DER: truncated header")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise ValueError("DER: multi-byte tags are not used here")
    length = data[offset + 1]
    start = offset + 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 3 or start + count > len(data):
            raise ValueError("DER: bad length")
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    end = start + length
    if end > len(data):
        raise ValueError("DER: element runs past its container")
    return tag, start, end


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(tag, element start, content start, content end) of each child in data[start:end]."""
    out = []
    offset = start
    while offset < end:
        tag, content, stop = _element(data[:end], offset)
        out.append((tag, offset, content, stop))
        offset = stop
    return out


def tbs_names(tbs: bytes) -> tuple[bytes, bytes]:
    """(issuer, subject) of a TBSCertificate, each the full DER of its Name."""
    tag, start, end = _element(tbs, 0)
    if tag != _SEQUENCE or end != len(tbs):
        raise ValueError("TBSCertificate: not one SEQUENCE")
    children = _children(tbs, start, end)
    if children and children[0][0] == 0xA0:  # [0] EXPLICIT version
        children = children[1:]
    if len(children) < 6:
        raise ValueError("TBSCertificate: too few fields")
    issuer, subject = children[2], children[4]
    if issuer[0] != _SEQUENCE or subject[0] != _SEQUENCE:
        raise ValueError("TBSCertificate: issuer or subject is not a Name")
    return tbs[issuer[1] : issuer[3]], tbs[subject[1] : subject[3]]


def gce_instance_info(value: bytes) -> dict[str, object]:
    """Google's GCE instance identity extension::

    SEQUENCE { zone UTF8String, projectNumber INTEGER, projectId UTF8String,
               instanceId INTEGER, instanceName UTF8String, [0] security ... OPTIONAL }
    """
    tag, start, end = _element(value, 0)
    if tag != _SEQUENCE or end != len(value):
        raise ValueError("GCE instance info: not one SEQUENCE")
    fields = _children(value, start, end)
    expected = (_UTF8, _INTEGER, _UTF8, _INTEGER, _UTF8)
    if len(fields) < len(expected) or tuple(f[0] for f in fields[:5]) != expected:
        raise ValueError("GCE instance info: unexpected fields")

    def text(i: int) -> str:
        return value[fields[i][2] : fields[i][3]].decode("utf-8")[:256]

    def integer(i: int) -> int:
        raw = value[fields[i][2] : fields[i][3]]
        if not raw or len(raw) > 9 or raw[0] & 0x80:
            raise ValueError("GCE instance info: bad INTEGER")
        return int.from_bytes(raw, "big")

    return {
        "zone": text(0),
        "project_number": str(integer(1)),
        "project_id": text(2),
        "instance_id": str(integer(3)),
        "instance_name": text(4),
    }
