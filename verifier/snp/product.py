"""AMD EPYC product lines: which one a report comes from, and how its TCB_VERSION reads.

The product line decides which AMD root key (ARK) a report's key must chain to, and how the
eight bytes of a TCB_VERSION are laid out:

* **From CPUID** (report version 3 and later, bytes 0x188..0x18A): family 0x19 with model
  0x00..0x0F is Milan, 0x10..0x1F or 0xA0..0xAF Genoa (and its Bergamo/Siena variants);
  family 0x1A (models 0x00..0x1F) is Turin.
* **From the VCEK/VLEK** (version 2 has no CPUID bytes): its productName extension, such as
  "Milan-B0", "Milan" or "Genoa"; the part before a "-" names the line.

TCB_VERSION (a little-endian u64, read here as its eight bytes): Milan and Genoa:
[0] bootloader, [1] TEE, [2..5] reserved, [6] SNP, [7] microcode. Turin: [0] FMC,
[1] bootloader, [2] TEE, [3] SNP, [4..6] reserved, [7] microcode. Reserved bytes must be
zero.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from verifier.errors import MalformedEvidence

__all__ = ["TCB_COMPONENTS", "ProductLine", "TcbVersion"]

#: Every TCB component name, in the order reports and tables show them.
TCB_COMPONENTS = ("fmc", "bootloader", "tee", "snp", "microcode")


class ProductLine(enum.StrEnum):
    MILAN = "Milan"
    GENOA = "Genoa"
    TURIN = "Turin"

    @classmethod
    def from_cpuid(cls, family: int, model: int) -> ProductLine | None:
        """The line of a CPUID family and model, or None if it is none we know."""
        if family == 0x19:
            if model <= 0x0F:
                return cls.MILAN
            if 0x10 <= model <= 0x1F or 0xA0 <= model <= 0xAF:
                return cls.GENOA
        if family == 0x1A and model <= 0x1F:
            return cls.TURIN
        return None

    @classmethod
    def from_product_name(cls, name: str) -> ProductLine | None:
        """The line a VCEK/VLEK productName names ("Milan-B0" -> Milan), or None."""
        stem = name.split("-", 1)[0]
        for line in cls:
            if stem == line.value:
                return line
        return None

    @property
    def components(self) -> tuple[str, ...]:
        """The TCB components this line has, in display order."""
        if self is ProductLine.TURIN:
            return ("fmc", "bootloader", "tee", "snp", "microcode")
        return ("bootloader", "tee", "snp", "microcode")

    @property
    def hwid_bytes(self) -> int:
        """Length of the VCEK's hwID: 64 bytes (the whole chip_id), 8 on Turin."""
        return 8 if self is ProductLine.TURIN else 64


#: Byte offset of each component in the TCB_VERSION, per line; the rest is reserved.
_LAYOUT: dict[ProductLine, dict[str, int]] = {
    ProductLine.MILAN: {"bootloader": 0, "tee": 1, "snp": 6, "microcode": 7},
    ProductLine.GENOA: {"bootloader": 0, "tee": 1, "snp": 6, "microcode": 7},
    ProductLine.TURIN: {"fmc": 0, "bootloader": 1, "tee": 2, "snp": 3, "microcode": 7},
}


@dataclass(frozen=True, slots=True)
class TcbVersion:
    """A TCB_VERSION read with its product line's layout."""

    raw: bytes  # the eight bytes as they are in the report
    product: ProductLine
    components: Mapping[str, int]

    @classmethod
    def decode(cls, raw: bytes, product: ProductLine, *, what: str) -> TcbVersion:
        """Read ``raw`` (8 bytes) with ``product``'s layout; reserved bytes must be zero."""
        layout = _LAYOUT[product]
        used = set(layout.values())
        for offset, value in enumerate(raw):
            if offset not in used and value:
                raise MalformedEvidence(
                    f"{what}: byte {offset} is reserved in a {product} TCB_VERSION and must "
                    f"be zero, found 0x{value:02x}"
                )
        components = {name: raw[layout[name]] for name in product.components}
        return cls(raw=raw, product=product, components=MappingProxyType(components))

    def to_dict(self) -> dict[str, object]:
        return {"raw": self.raw.hex(), **self.components}

    def __str__(self) -> str:
        return ", ".join(f"{name} {value}" for name, value in self.components.items())
