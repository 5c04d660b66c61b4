"""RFC 9162 Merkle trees: hashing, proof shapes, proof verification, and the compact range.

Pure: standard library only (no SQLAlchemy, no I/O). Hashing is RFC 9162 section 2.1 exactly:

* leaf hash ``SHA-256(0x00 || data)``, interior node ``SHA-256(0x01 || left || right)``;
* the hash of the empty tree is ``SHA-256("")``;
* a tree of n > 1 leaves splits at k, the largest power of two smaller than n; odd nodes are
  carried up, never duplicated.

Storage model. A *node* ``(level, index)`` is the perfect subtree of ``2**level`` leaves
starting at leaf ``index * 2**level``; once complete its hash never changes, so the ledger
stores every complete node (level 0 being the leaf hashes). Every subtree the RFC's
recursion names, the root included, is a run of such perfect nodes (:func:`range_nodes`),
so any root or proof costs O(log n) stored hashes.

Proofs are produced in two steps: :func:`inclusion_ranges` and :func:`consistency_ranges`
give the leaf ranges whose subtree hashes make up the proof (RFC 9162 sections 2.1.3.1 and
2.1.4.1, unrolled into loops), and :func:`hash_ranges` turns them into hashes from a
caller-supplied batch reader. Verification follows sections 2.1.3.2 and 2.1.4.2 and raises
:class:`~ledger.errors.InvalidProof`; it never returns a bool.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ledger.errors import InvalidProof

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "NodeID",
    "consistency_ranges",
    "fold",
    "hash_ranges",
    "inclusion_ranges",
    "leaf_hash",
    "node_hash",
    "range_nodes",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

#: (level, index): the perfect subtree of 2**level leaves starting at index * 2**level.
NodeID = tuple[int, int]
#: A half-open range of leaf indices [start, end).
LeafRange = tuple[int, int]


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two strictly smaller than ``size`` (> 1)."""
    return 1 << ((size - 1).bit_length() - 1)


def range_nodes(start: int, end: int) -> list[NodeID]:
    """The perfect nodes whose hashes, folded right to left, give ``MTH(D[start:end])``.

    Valid for every range the RFC's recursion produces, whose start is a multiple of the
    largest power of two not above its length; ``ValueError`` otherwise.
    """
    if not 0 <= start < end:
        raise ValueError(f"empty or negative leaf range [{start}, {end})")
    nodes: list[NodeID] = []
    offset, size = start, end - start
    for level in reversed(range(size.bit_length())):
        if size >> level & 1:
            if offset % (1 << level):
                raise ValueError(
                    f"leaf range [{start}, {end}) is not a subtree of an RFC 9162 tree"
                )
            nodes.append((level, offset >> level))
            offset += 1 << level
    return nodes


def inclusion_ranges(index: int, size: int) -> list[LeafRange]:
    """The subtrees whose hashes form the inclusion proof of leaf ``index`` in a tree of
    ``size`` leaves, from the leaf's sibling up to the root's child (RFC 9162 PATH)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    ranges: list[LeafRange] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    ranges.reverse()
    return ranges


def consistency_ranges(size1: int, size2: int) -> list[LeafRange]:
    """The subtrees whose hashes form the consistency proof from ``size1`` to ``size2``
    (RFC 9162 PROOF/SUBPROOF), for ``0 < size1 <= size2``."""
    if not 0 < size1 <= size2:
        raise ValueError(f"no consistency proof from size {size1} to size {size2}")
    ranges: list[LeafRange] = []
    start, end, old = 0, size2, size1  # ``old`` counts the old tree's leaves from ``start``
    whole_old_tree = True  # SUBPROOF's b: the verifier already holds this subtree's hash
    while old != end - start:
        k = _split(end - start)
        if old <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
            old -= k
            whole_old_tree = False
    if not whole_old_tree:
        ranges.append((start, end))
    ranges.reverse()
    return ranges


def hash_ranges(
    ranges: Sequence[LeafRange], read: Callable[[Sequence[NodeID]], Mapping[NodeID, bytes]]
) -> list[bytes]:
    """Hash each range from stored perfect nodes, fetched with one call to ``read``.

    ``read`` receives every node needed (deduplicated, sorted) and returns their hashes; a
    missing node is an error of the storage, reported as ``KeyError`` by the caller's mapping.
    """
    plans = [range_nodes(start, end) for start, end in ranges]
    wanted = sorted({node for plan in plans for node in plan})
    stored = read(wanted) if wanted else {}
    return [fold([stored[node] for node in plan]) for plan in plans]


def fold(hashes: Sequence[bytes]) -> bytes:
    """Combine the hashes of consecutive perfect subtrees, largest first, into one hash."""
    if not hashes:
        return EMPTY_ROOT
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` implies for ``leaf`` at ``index`` (RFC 9162 section 2.1.3.2).

    Raises :class:`InvalidProof` if the proof cannot be for that index and size.
    """
    if not 0 <= index < size:
        raise InvalidProof(f"inclusion proof: index {index} is outside a tree of size {size}")
    _check_hash(leaf, "leaf hash")
    fn, sn, result = index, size - 1, leaf
    for element in proof:
        _check_hash(element, "inclusion proof element")
        if sn == 0:
            raise InvalidProof(f"inclusion proof: longer than a tree of size {size} allows")
        if fn & 1 or fn == sn:
            result = node_hash(element, result)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            result = node_hash(result, element)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidProof(f"inclusion proof: shorter than a tree of size {size} needs")
    return result


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise :class:`InvalidProof` unless ``proof`` shows ``leaf`` at ``index`` under ``root``."""
    _check_hash(root, "root hash")
    calculated = root_from_inclusion_proof(index, size, leaf, proof)
    if not hmac.compare_digest(calculated, root):
        raise InvalidProof(
            f"inclusion proof: leads to root {calculated.hex()}, expected {root.hex()}"
        )


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Raise :class:`InvalidProof` unless the tree of ``size2`` extends the one of ``size1``.

    Follows RFC 9162 section 2.1.4.2, and, like transparency-dev/merkle, refuses
    ``size1 == 0`` (there is nothing to be consistent with) and wants an empty proof and equal
    roots when the sizes are equal.
    """
    if size1 <= 0 or size1 > size2:
        raise InvalidProof(f"consistency proof: no proof from size {size1} to size {size2}")
    if size1 == size2:
        # Only the roots' equality matters here; transparency-dev/merkle does not check their
        # length in this case either (probe sizes-are-equal-one-and-proof-is-empty).
        if proof:
            raise InvalidProof("consistency proof: must be empty between equal sizes")
        if not hmac.compare_digest(root1, root2):
            raise InvalidProof("consistency proof: equal sizes with different roots")
        return
    _check_hash(root1, "first root hash")
    _check_hash(root2, "second root hash")
    if not proof:
        raise InvalidProof("consistency proof: empty between different sizes")
    for element in proof:
        _check_hash(element, "consistency proof element")
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # a power of two: the old root is the first subtree
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    first = second = path[0]
    for element in path[1:]:
        if sn == 0:
            raise InvalidProof(f"consistency proof: longer than sizes {size1}, {size2} allow")
        if fn & 1 or fn == sn:
            first = node_hash(element, first)
            second = node_hash(element, second)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            second = node_hash(second, element)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidProof(f"consistency proof: shorter than sizes {size1}, {size2} need")
    if not hmac.compare_digest(first, root1):
        raise InvalidProof("consistency proof: does not lead to the first root")
    if not hmac.compare_digest(second, root2):
        raise InvalidProof("consistency proof: does not lead to the second root")


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise InvalidProof(f"{what}: expected {HASH_SIZE} bytes")


@dataclass
class CompactRange:
    """The right border of a tree: the hashes of the perfect subtrees covering [0, size),
    largest first (one per set bit of ``size``). Enough to append leaves and compute the
    root without reading anything else."""

    size: int = 0
    hashes: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.hashes) != self.size.bit_count():
            raise ValueError(
                f"a compact range of size {self.size} has {self.size.bit_count()} hashes, "
                f"found {len(self.hashes)}"
            )

    @classmethod
    def from_bytes(cls, size: int, data: bytes) -> CompactRange:
        if len(data) % HASH_SIZE:
            raise ValueError("compact range bytes are not a whole number of hashes")
        hashes = [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]
        return cls(size, hashes)

    def to_bytes(self) -> bytes:
        return b"".join(self.hashes)

    def nodes(self) -> list[NodeID]:
        return range_nodes(0, self.size) if self.size else []

    def append(self, leaf: bytes) -> list[tuple[NodeID, bytes]]:
        """Append one leaf hash; return the perfect nodes of level >= 1 it completes."""
        index = self.size
        created: list[tuple[NodeID, bytes]] = []
        current, level, position = leaf, 0, index
        while position & 1:  # a right child: merge with the left sibling on the border
            current = node_hash(self.hashes.pop(), current)
            level += 1
            position >>= 1
            created.append(((level, position), current))
        self.hashes.append(current)
        self.size += 1
        return created

    def extend(self, leaves: Iterable[bytes]) -> list[tuple[NodeID, bytes]]:
        created: list[tuple[NodeID, bytes]] = []
        for leaf in leaves:
            created.extend(self.append(leaf))
        return created

    def root(self) -> bytes:
        return fold(self.hashes)
