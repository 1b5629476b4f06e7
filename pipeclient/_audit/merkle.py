"""RFC 9162 Merkle trees: tree heads, inclusion and consistency proofs, and their checks.

Leaf hash SHA-256(0x00 || leaf), node hash SHA-256(0x01 || left || right); the tree over n
leaves splits at the largest power of two below n. `TreeBuilder` keeps only the right
edge of the tree (one hash per set bit of its size), so a log of any length is hashed in
one pass and constant memory. Proofs are built from the leaf hashes (`Leaves`, 32 bytes
per leaf in one buffer) and checked with the algorithms of RFC 9162 sections 2.1.3.2 and
2.1.4.2, which need nothing but the proof, the sizes and the roots.
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import sha256

__all__ = [
    "EMPTY_ROOT",
    "Leaves",
    "ProofError",
    "TreeBuilder",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion",
    "verify_consistency",
]

HASH_SIZE = 32
EMPTY_ROOT = sha256(b"").digest()  # the head of the empty tree


class ProofError(ValueError):
    """A proof that does not hold: what is wrong with it."""


def leaf_hash(leaf: bytes) -> bytes:
    return sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right).digest()


class TreeBuilder:
    """The tree head of a growing list of leaf hashes, in O(log n) memory."""

    __slots__ = ("_edge", "size")

    def __init__(self) -> None:
        self.size = 0
        self._edge: list[bytes] = []  # roots of the perfect subtrees, left to right

    def append(self, leaf_digest: bytes) -> None:
        edge, node, size = self._edge, leaf_digest, self.size
        while size & 1:  # merge equal-sized subtrees, as a binary counter carries
            node = sha256(b"\x01" + edge.pop() + node).digest()
            size >>= 1
        edge.append(node)
        self.size += 1

    def root(self) -> bytes:
        if not self._edge:
            return EMPTY_ROOT
        node = self._edge[-1]
        for left in reversed(self._edge[:-1]):
            node = sha256(b"\x01" + left + node).digest()
        return node


class Leaves:
    """Leaf hashes in one buffer: the input of proofs (32 MB for a million lines)."""

    def __init__(self, data: bytes | bytearray = b"") -> None:
        if len(data) % HASH_SIZE:
            raise ValueError("leaf hashes come in 32-byte units")
        self._data = bytearray(data)

    def __len__(self) -> int:
        return len(self._data) // HASH_SIZE

    def __getitem__(self, index: int) -> bytes:
        if not 0 <= index < len(self):
            raise IndexError(index)
        return bytes(self._data[index * HASH_SIZE : (index + 1) * HASH_SIZE])

    def append(self, leaf_digest: bytes) -> None:
        self._data += leaf_digest

    def to_bytes(self) -> bytes:
        return bytes(self._data)

    def root(self, start: int = 0, end: int | None = None) -> bytes:
        """The head of the subtree over leaves [start, end)."""
        end = len(self) if end is None else end
        tree, data = TreeBuilder(), self._data
        for offset in range(start * HASH_SIZE, end * HASH_SIZE, HASH_SIZE):
            tree.append(bytes(data[offset : offset + HASH_SIZE]))
        return tree.root()


def _split(size: int) -> int:
    """The largest power of two smaller than `size` (> 1)."""
    return 1 << ((size - 1).bit_length() - 1)


def inclusion_proof(leaves: Leaves, index: int, size: int) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 9162 2.1.3.1."""
    if not 0 <= index < size <= len(leaves):
        raise ValueError(f"no leaf {index} in a tree of {size} (of {len(leaves)} leaves)")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index - start < k:
            path.append(leaves.root(start + k, end))
            end = start + k
        else:
            path.append(leaves.root(start, start + k))
            start += k
    path.reverse()  # the nearest sibling first
    return path


def consistency_proof(leaves: Leaves, old_size: int, new_size: int) -> list[bytes]:
    """PROOF(old_size, D[0:new_size]) of RFC 9162 2.1.4.1."""
    if not 0 <= old_size <= new_size <= len(leaves):
        raise ValueError(f"no consistency proof from {old_size} to {new_size} leaves")
    if old_size in (0, new_size):
        return []
    proof: list[bytes] = []
    start, end, m, complete = 0, new_size, old_size, True
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            proof.append(leaves.root(start + k, end))
            end = start + k
        else:
            proof.append(leaves.root(start, start + k))
            start, m, complete = start + k, m - k, False
    if not complete:
        proof.append(leaves.root(start, end))
    proof.reverse()
    return proof


def root_from_inclusion(index: int, size: int, leaf_digest: bytes, path: Sequence[bytes]) -> bytes:
    """The tree head an inclusion proof leads to (RFC 9162 2.1.3.2); ProofError if none."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of {size} leaves")
    _check_hashes([leaf_digest, *path])
    fn, sn, node = index, size - 1, leaf_digest
    for sibling in path:
        if sn == 0:
            raise ProofError("the proof is longer than the tree is high")
        if fn & 1 or fn == sn:
            node = node_hash(sibling, node)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            node = node_hash(node, sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the proof is shorter than the tree is high")
    return node


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of `new_size` extends that of `old_size` (RFC 9162 2.1.4.2)."""
    _check_hashes([old_root, new_root, *proof])
    if not 0 <= old_size <= new_size:
        raise ProofError(f"a tree of {old_size} leaves cannot be a prefix of one of {new_size}")
    if old_size == new_size or old_size == 0:
        if proof:
            raise ProofError("the proof must be empty")
        if old_size == new_size and old_root != new_root:
            raise ProofError("two trees of the same size with different heads")
        return
    nodes = list(proof)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old head is a node
        nodes.insert(0, old_root)
    if not nodes:
        raise ProofError("the proof is empty")
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = nodes[0]
    for node in nodes[1:]:
        if sn == 0:
            raise ProofError("the proof is longer than the trees are high")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(node, fr), node_hash(node, sr)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, node)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the proof is shorter than the trees are high")
    if fr != old_root:
        raise ProofError("the proof does not lead to the old tree head")
    if sr != new_root:
        raise ProofError("the proof does not lead to the new tree head")


def _check_hashes(hashes: Sequence[bytes]) -> None:
    if any(len(item) != HASH_SIZE for item in hashes):
        raise ProofError("a hash is not 32 bytes")
