"""RFC 9162 hashing and proofs against every vector, the real Rekor proofs, and a naive model."""

from __future__ import annotations

import base64
import hashlib
import json
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import InvalidProof
from ledger.merkle import (
    EMPTY_ROOT,
    CompactRange,
    consistency_ranges,
    fold,
    hash_ranges,
    inclusion_ranges,
    leaf_hash,
    node_hash,
    range_nodes,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).resolve().parent.parent / "fixtures" / "vectors"


def load(name: str):
    return json.loads((VECTORS / name).read_text())


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# --- a naive model: RFC 9162 section 2.1 written recursively, straight from the text --------


def mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [mth(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*subproof(m, leaves[:k], whole), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]


class Store:
    """Stored perfect nodes of a tree, as the database keeps them, built with CompactRange."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        compact = CompactRange()
        for index, data in enumerate(leaves):
            hashed = leaf_hash(data)
            self.nodes[(0, index)] = hashed
            for node, value in compact.append(hashed):
                self.nodes[node] = value
        self.compact = compact
        self.reads: list[list[tuple[int, int]]] = []

    def read(self, wanted):
        self.reads.append(list(wanted))
        return {node: self.nodes[node] for node in wanted}

    def root(self, size: int) -> bytes:
        return hash_ranges([(0, size)], self.read)[0] if size else EMPTY_ROOT

    def inclusion(self, index: int, size: int) -> list[bytes]:
        return hash_ranges(inclusion_ranges(index, size), self.read)

    def consistency(self, size1: int, size2: int) -> list[bytes]:
        return hash_ranges(consistency_ranges(size1, size2), self.read)


@cache
def leaves_n(n: int) -> tuple[bytes, ...]:
    return tuple(f"leaf {i}".encode() for i in range(n))


# --- the vectors -----------------------------------------------------------------------------


def test_vector_files_are_the_ones_catalogued() -> None:
    for line in (VECTORS / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        assert hashlib.sha256((VECTORS / name).read_bytes()).hexdigest() == digest, name


def test_hasher_vectors() -> None:
    vectors = load("rfc6962_published_ct.json")
    assert EMPTY_ROOT.hex() == vectors["empty_tree_root"]
    by_desc = {v["desc"]: v for v in vectors["hasher_vectors"]}
    for vector in by_desc.values():
        if "leaf_hex" in vector:
            assert leaf_hash(h(vector["leaf_hex"])).hex() == vector["want"]
        elif "left_hex" in vector:
            assert node_hash(h(vector["left_hex"]), h(vector["right_hex"])).hex() == vector["want"]
        else:
            assert fold([]).hex() == vector["want"]


def test_published_ct_roots_and_proofs() -> None:
    vectors = load("rfc6962_published_ct.json")
    leaves = [h(x) for x in vectors["leaves_hex"]]
    store = Store(leaves)
    for root in vectors["roots"]:
        assert store.root(root["tree_size"]).hex() == root["root"]
    for proof in vectors["inclusion_proofs"]:
        index, size = proof["leaf_index"], proof["tree_size"]
        assert [p.hex() for p in store.inclusion(index, size)] == proof["proof"]
        verify_inclusion(
            leaf_hash(h(proof["leaf_input_hex"])),
            index,
            size,
            [h(p) for p in proof["proof"]],
            h(proof["root"]),
        )
    for proof in vectors["consistency_proofs"]:
        size1, size2 = proof["size1"], proof["size2"]
        assert [p.hex() for p in store.consistency(size1, size2)] == proof["proof"]
        verify_consistency(
            size1, size2, [h(p) for p in proof["proof"]], h(proof["root1"]), h(proof["root2"])
        )


def test_real_certificate_transparency_leaf() -> None:
    leaf = load("rfc6962_published_ct.json")["real_ct_leaf"]
    data = base64.b64decode(leaf["leaf_input_b64"])
    verify_inclusion(leaf_hash(data), 0, 1, [], h(leaf["root"]))
    assert Store([data]).root(1).hex() == leaf["root"]


def test_classic8_exhaustive() -> None:
    vectors = load("rfc6962_classic8_exhaustive.json")
    leaves = [h(leaf["input_hex"]) for leaf in vectors["leaves"]]
    for leaf in vectors["leaves"]:
        assert leaf_hash(h(leaf["input_hex"])).hex() == leaf["leaf_hash"]
    store = Store(leaves)
    for root in vectors["roots"]:
        assert store.root(root["tree_size"]).hex() == root["root"]
    assert len(vectors["inclusion_proofs"]) == 36
    for proof in vectors["inclusion_proofs"]:
        index, size = proof["leaf_index"], proof["tree_size"]
        assert [p.hex() for p in store.inclusion(index, size)] == proof["proof"]
        verify_inclusion(
            h(proof["leaf_hash"]), index, size, [h(p) for p in proof["proof"]], h(proof["root"])
        )
    assert len(vectors["consistency_proofs"]) == 36
    for proof in vectors["consistency_proofs"]:
        size1, size2 = proof["size1"], proof["size2"]
        assert [p.hex() for p in store.consistency(size1, size2)] == proof["proof"]
        verify_consistency(
            size1, size2, [h(p) for p in proof["proof"]], h(proof["root1"]), h(proof["root2"])
        )


PROBES = load("tdev_merkle_probes.json")


@pytest.mark.parametrize(
    "probe", PROBES["inclusion"], ids=lambda p: p["file"].removeprefix("testdata/inclusion/")
)
def test_inclusion_probes(probe) -> None:
    args = (
        h(probe["leafHash"]),
        probe["leafIdx"],
        probe["treeSize"],
        [h(p) for p in probe["proof"]],
        h(probe["root"]),
    )
    if probe["wantErr"]:
        with pytest.raises(InvalidProof):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize(
    "probe", PROBES["consistency"], ids=lambda p: p["file"].removeprefix("testdata/consistency/")
)
def test_consistency_probes(probe) -> None:
    args = (
        probe["size1"],
        probe["size2"],
        [h(p) for p in probe["proof"]],
        h(probe["root1"]),
        h(probe["root2"]),
    )
    if probe["wantErr"]:
        with pytest.raises(InvalidProof):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


def test_probe_counts() -> None:
    assert len(PROBES["inclusion"]) == 98
    assert len(PROBES["consistency"]) == 98
    assert sum(p["wantErr"] for p in PROBES["inclusion"]) > 50


REKOR = load("sigstore_rekor_real_bundles.json")["entries"]


@pytest.mark.parametrize(
    "entry", REKOR, ids=lambda e: f"{e['log'].split('//')[-1]}-{e['leaf_index_in_tree']}"
)
def test_real_rekor_inclusion_proofs(entry) -> None:
    body = base64.b64decode(entry["canonicalized_body_b64"])
    assert leaf_hash(body).hex() == entry["leaf_hash"]
    proof = [h(p) for p in entry["proof"]]
    verify_inclusion(
        h(entry["leaf_hash"]),
        entry["leaf_index_in_tree"],
        entry["tree_size"],
        proof,
        h(entry["root"]),
    )
    with pytest.raises(InvalidProof):
        verify_inclusion(
            h(entry["leaf_hash"]),
            entry["leaf_index_in_tree"] ^ 1,
            entry["tree_size"],
            proof,
            h(entry["root"]),
        )
    if proof:
        broken = [*proof[:-1], bytes(32)]
        with pytest.raises(InvalidProof):
            verify_inclusion(
                h(entry["leaf_hash"]),
                entry["leaf_index_in_tree"],
                entry["tree_size"],
                broken,
                h(entry["root"]),
            )


# --- the naive model, exhaustively for small trees and by property for larger ones ----------


@pytest.mark.parametrize("size", range(1, 40))
def test_every_proof_in_small_trees_matches_the_naive_model(size: int) -> None:
    leaves = list(leaves_n(size))
    store = Store(leaves)
    assert store.root(size) == mth(leaves) == store.compact.root()
    for index in range(size):
        proof = store.inclusion(index, size)
        assert proof == path(index, leaves)
        verify_inclusion(leaf_hash(leaves[index]), index, size, proof, mth(leaves))
    for old in range(1, size + 1):
        proof = store.consistency(old, size)
        assert proof == subproof(old, leaves, True)
        verify_consistency(old, size, proof, mth(leaves[:old]), mth(leaves))


@settings(max_examples=120, deadline=None)
@given(st.integers(1, 1100), st.data())
def test_proofs_match_the_naive_model(size: int, data) -> None:
    leaves = list(leaves_n(size))
    store = Store(leaves)
    index = data.draw(st.integers(0, size - 1))
    old = data.draw(st.integers(1, size))
    assert store.inclusion(index, size) == path(index, leaves)
    assert store.consistency(old, size) == subproof(old, leaves, True)
    verify_inclusion(
        leaf_hash(leaves[index]), index, size, store.inclusion(index, size), mth(leaves)
    )
    verify_consistency(old, size, store.consistency(old, size), mth(leaves[:old]), mth(leaves))


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 300), st.data())
def test_any_tampering_with_a_proof_fails(size: int, data) -> None:
    leaves = list(leaves_n(size))
    store = Store(leaves)
    root = mth(leaves)
    index = data.draw(st.integers(0, size - 1))
    proof = store.inclusion(index, size)
    leaf = leaf_hash(leaves[index])
    # Not the tree size alone: an inclusion proof does not always pin the size (for leaf 0,
    # sizes 33 and 34 give the same path shape); the root is what binds it, as RFC 9162 says.
    mutation = data.draw(st.sampled_from(["flip", "drop", "extra", "index", "swap"]))
    if mutation == "flip" and proof:
        at = data.draw(st.integers(0, len(proof) - 1))
        proof = [*proof[:at], bytes([proof[at][0] ^ 1]) + proof[at][1:], *proof[at + 1 :]]
    elif mutation == "drop" and proof:
        proof = proof[:-1]
    elif mutation == "extra":
        proof = [*proof, bytes(32)]
    elif mutation == "index":
        index = (index + data.draw(st.integers(1, size - 1))) % size
    elif mutation == "swap" and len(proof) >= 2 and proof[0] != proof[1]:
        proof = [proof[1], proof[0], *proof[2:]]
    else:
        leaf = leaf_hash(b"another leaf")
    with pytest.raises(InvalidProof):
        verify_inclusion(leaf, index, size, proof, root)


def test_reads_are_logarithmic() -> None:
    """Any root or proof touches O(log n) stored nodes, in one batched read."""
    size = 1_000_003
    store = Store.__new__(Store)
    store.reads = []
    store.read = lambda wanted: (store.reads.append(list(wanted)), {n: bytes(32) for n in wanted})[
        1
    ]  # type: ignore[method-assign]
    hash_ranges(inclusion_ranges(123_456, size), store.read)
    hash_ranges(consistency_ranges(77_777, size), store.read)
    hash_ranges([(0, size)], store.read)
    assert len(store.reads) == 3
    for read in store.reads:
        assert len(read) <= 2 * size.bit_length()


class TestCompactRange:
    def test_created_nodes_are_exactly_the_perfect_subtrees(self) -> None:
        compact = CompactRange()
        created = {}
        for i in range(100):
            for node, value in compact.append(leaf_hash(b"%d" % i)):
                created[node] = value
        expected = {(level, idx) for level in range(1, 7) for idx in range(100 >> level)}
        assert set(created) == expected

    def test_round_trip_and_validation(self) -> None:
        compact = CompactRange()
        compact.extend(leaf_hash(b"%d" % i) for i in range(13))
        again = CompactRange.from_bytes(13, compact.to_bytes())
        assert again.root() == compact.root() == mth([b"%d" % i for i in range(13)])
        assert again.nodes() == [(3, 0), (2, 2), (0, 12)]
        with pytest.raises(ValueError, match="has 3 hashes"):
            CompactRange(13, compact.hashes[:2])
        with pytest.raises(ValueError, match="whole number"):
            CompactRange.from_bytes(13, compact.to_bytes()[:-1])


def test_range_nodes_rejects_ranges_no_rfc_tree_has() -> None:
    assert range_nodes(8, 13) == [(2, 2), (0, 12)]
    with pytest.raises(ValueError, match="not a subtree"):
        range_nodes(3, 7)
    with pytest.raises(ValueError, match="empty"):
        range_nodes(4, 4)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: root_from_inclusion_proof(5, 5, bytes(32), []), "outside a tree of size 5"),
        (lambda: root_from_inclusion_proof(0, 1, bytes(31), []), "leaf hash: expected 32 bytes"),
        (lambda: verify_consistency(0, 5, [], bytes(32), bytes(32)), "no proof from size 0"),
        (lambda: verify_consistency(6, 5, [], bytes(32), bytes(32)), "no proof from size 6"),
        (lambda: verify_consistency(5, 5, [bytes(32)], bytes(32), bytes(32)), "must be empty"),
        (lambda: verify_consistency(5, 5, [], bytes(32), b"\x01" * 32), "different roots"),
        (
            lambda: verify_consistency(3, 5, [], bytes(32), bytes(32)),
            "empty between different sizes",
        ),
    ],
)
def test_verification_errors_say_why(call, message) -> None:
    with pytest.raises(InvalidProof, match=message):
        call()


def test_proof_shapes_reject_impossible_arguments() -> None:
    with pytest.raises(ValueError, match="outside a tree"):
        inclusion_ranges(3, 3)
    with pytest.raises(ValueError, match="no consistency proof"):
        consistency_ranges(0, 3)
    assert consistency_ranges(4, 4) == []
