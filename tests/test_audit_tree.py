"""The audit log as a Merkle tree: RFC 9162 hashing and proofs (against the reference
vectors), C2SP signed-note checkpoints (against the Go reference note), and every way to
tamper with a checkpointed log, caught with the line named, through the API and the CLI."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pipeclient import ConfigError
from pipeclient._audit.checkpoint import (
    Checkpoint,
    CheckpointError,
    PublicKey,
    key_id,
    parse_checkpoint,
    parse_public_key,
    parse_signing_key,
    public_key_of,
    sign_text,
)
from pipeclient._audit.log import GENESIS, AuditLog, format_line
from pipeclient._audit.merkle import (
    EMPTY_ROOT,
    Leaves,
    ProofError,
    TreeBuilder,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_inclusion,
    verify_consistency,
)
from pipeclient._audit.tree import (
    LogFault,
    check_proof,
    checkpoint_log,
    parse_proof,
    prove,
    tree_file_for,
)
from pipeclient._audit.verify import log_origin, verify
from pipeclient._sinks.audit import audit_fields

from .conftest import RunCli
from .test_audit import call_record

# -- RFC 9162 / RFC 6962 reference vectors (transparency-dev/merkle, proof/verify_test.go) --

LEAVES = [
    bytes.fromhex(text)
    for text in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    bytes.fromhex(text)
    for text in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]
# (leaf index, tree size, path): the vectors give 1-based leaf numbers
INCLUSION = [
    (0, 8, ["96a296d2", "5f083f0a", "6b47aaf2"]),
    (5, 8, ["bc1a0643", "ca854ea1", "d37ee418"]),
    (2, 3, ["fac54203"]),
    (1, 5, ["6e340b9c", "5f083f0a", "bc1a0643"]),
]
INCLUSION_FULL = {
    "96a296d2": "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "5f083f0a": "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "6b47aaf2": "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    "bc1a0643": "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "ca854ea1": "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "d37ee418": "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "fac54203": "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "6e340b9c": "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "0ebc5d34": "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    "b08693ec": "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
}
CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d2", "5f083f0a", "6b47aaf2"]),
    (6, 8, ["0ebc5d34", "ca854ea1", "d37ee418"]),
    (2, 5, ["5f083f0a", "bc1a0643"]),
    (6, 7, ["0ebc5d34", "b08693ec", "d37ee418"]),
]


def reference_leaves() -> Leaves:
    leaves = Leaves()
    for leaf in LEAVES:
        leaves.append(leaf_hash(leaf))
    return leaves


def hashes(short: list[str]) -> list[bytes]:
    return [bytes.fromhex(INCLUSION_FULL[item]) for item in short]


def test_tree_heads_match_the_reference_vectors() -> None:
    leaves = reference_leaves()
    for size in range(1, 9):
        assert leaves.root(0, size) == ROOTS[size - 1], size
        tree = TreeBuilder()
        for index in range(size):
            tree.append(leaves[index])
        assert (tree.size, tree.root()) == (size, ROOTS[size - 1])
    assert (
        TreeBuilder().root()
        == EMPTY_ROOT
        == bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    )


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_inclusion_proofs_match_the_reference_vectors(
    index: int, size: int, path: list[str]
) -> None:
    leaves = reference_leaves()
    assert inclusion_proof(leaves, index, size) == hashes(path)
    assert root_from_inclusion(index, size, leaves[index], hashes(path)) == ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION[:2] + INCLUSION[3:])
def test_corrupted_inclusion_proofs_fail(index: int, size: int, path: list[str]) -> None:
    leaves, proof, root = reference_leaves(), hashes(path), ROOTS[size - 1]
    leaf = leaves[index]
    probes: list[tuple[int, int, bytes, list[bytes]]] = [
        (index + 1, size, leaf, proof),
        (index ^ 2, size, leaf, proof),
        (index, size * 2, leaf, proof),
        (index, size // 2, leaf, proof),
        (index, size, leaf_hash(b"WrongLeaf"), proof),
        (index, size, leaf, [*proof, root]),
        (index, size, leaf, [root, *proof]),
        (index, size, leaf, proof[:-1]),
    ]
    for number in range(len(proof)):
        flipped = list(proof)
        flipped[number] = bytes([flipped[number][0] ^ 8]) + flipped[number][1:]
        probes.append((index, size, leaf, flipped))
    if index:
        probes.append((index - 1, size, leaf, proof))
    for probe_index, probe_size, probe_leaf, probe_path in probes:
        try:
            got = root_from_inclusion(probe_index, probe_size, probe_leaf, probe_path)
        except ProofError:
            continue
        assert got != root, (probe_index, probe_size)


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY)
def test_consistency_proofs_match_the_reference_vectors(
    old: int, new: int, path: list[str]
) -> None:
    leaves, proof = reference_leaves(), hashes(path)
    assert consistency_proof(leaves, old, new) == proof
    verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], proof)
    if not proof:
        return
    bad: list[tuple[int, int, bytes, bytes, list[bytes]]] = [
        (old - 1, new, ROOTS[old - 1], ROOTS[new - 1], proof),
        (old + 1, new, ROOTS[old - 1], ROOTS[new - 1], proof),
        (old, new * 2, ROOTS[old - 1], ROOTS[new - 1], proof),
        (old, new, ROOTS[new - 1], ROOTS[old - 1], proof),
        (old, new, ROOTS[old - 1], ROOTS[new - 1], []),
        (old, new, ROOTS[old - 1], ROOTS[new - 1], [*proof, ROOTS[0]]),
        (old, new, ROOTS[old - 1], ROOTS[new - 1], [proof[0], *proof]),
        (old, new, ROOTS[old - 1], ROOTS[new - 1], proof[:-1]),
    ]
    for number in range(len(proof)):
        flipped = list(proof)
        flipped[number] = bytes([flipped[number][0] ^ 16]) + flipped[number][1:]
        bad.append((old, new, ROOTS[old - 1], ROOTS[new - 1], flipped))
    for probe in bad:
        with pytest.raises(ProofError):
            verify_consistency(*probe)


def test_every_proof_of_small_trees_verifies() -> None:
    leaves = Leaves()
    for index in range(33):
        leaves.append(leaf_hash(index.to_bytes(2, "big")))
    for size in range(1, 34):
        for index in range(size):
            path = inclusion_proof(leaves, index, size)
            assert root_from_inclusion(index, size, leaves[index], path) == leaves.root(0, size)
            assert len(path) <= (size - 1).bit_length()
        for old in range(size + 1):
            proof = consistency_proof(leaves, old, size)
            verify_consistency(old, size, leaves.root(0, old), leaves.root(0, size), proof)


def test_trivial_consistency_cases() -> None:
    one, two = ROOTS[0], ROOTS[1]
    verify_consistency(0, 0, one, one, [])
    verify_consistency(0, 1, one, two, [])
    verify_consistency(1, 1, two, two, [])
    for probe in [(1, 1, one, two, []), (1, 0, one, two, []), (1, 2, one, two, [])]:
        with pytest.raises(ProofError):
            verify_consistency(*probe)
    with pytest.raises(ProofError):
        verify_consistency(1, 1, one, one, [EMPTY_ROOT])


# -- C2SP signed notes: the golang.org/x/mod/sumdb/note reference -------------------------

GO_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_SIGNATURE = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqd"
    "ngotpRZb6KE6RyyBwJnAM=\n"
)


def test_signatures_are_byte_for_byte_those_of_the_go_note_package() -> None:
    seed = base64.b64decode(GO_SIGNER.split("+", 4)[4])[1:]
    key = Ed25519PrivateKey.from_private_bytes(seed)
    assert sign_text(GO_TEXT, key, "PeterNeumann").line() == GO_SIGNATURE
    public = parse_public_key(GO_VERIFIER)
    assert public == PublicKey(public_key_of(key), "PeterNeumann")
    assert public.verifier_key("PeterNeumann") == GO_VERIFIER
    assert key_id("PeterNeumann", public.raw).hex() == "c74f20a3"


def new_key() -> tuple[str, Ed25519PrivateKey, str]:
    """(private key text, key, public key text)"""
    text = base64.b64encode(os.urandom(32)).decode()
    key = parse_signing_key(text)
    return text, key, base64.b64encode(public_key_of(key)).decode()


def test_checkpoint_text_parses_back_and_is_checked() -> None:
    _, key, public = new_key()
    checkpoint = Checkpoint("pipeclient/audit/0123456789abcdef", 42, ROOTS[7]).signed(key)
    text = checkpoint.text()
    origin, size, root, blank, signature, end = text.split("\n")
    assert (origin, size, root, blank, end) == (
        "pipeclient/audit/0123456789abcdef",
        "42",
        base64.b64encode(ROOTS[7]).decode(),
        "",
        "",
    )
    assert signature.startswith("\u2014 pipeclient/audit/0123456789abcdef ")
    blob = base64.b64decode(signature.rsplit(" ", 1)[1])
    assert blob[:4] == key_id(checkpoint.origin, public_key_of(key)) and len(blob) == 68
    assert parse_checkpoint(text) == checkpoint
    assert parse_checkpoint(text).check(parse_public_key(public)).name == checkpoint.origin
    verifier = PublicKey(public_key_of(key)).verifier_key(checkpoint.origin)
    assert parse_checkpoint(text).check(parse_public_key(verifier))

    _, _, other = new_key()
    with pytest.raises(CheckpointError, match="not signed by this public key"):
        checkpoint.check(parse_public_key(other))
    changed = parse_checkpoint(text.replace("\n42\n", "\n43\n"))
    with pytest.raises(CheckpointError, match="does not match the checkpoint's text"):
        changed.check(parse_public_key(public))
    with pytest.raises(CheckpointError, match="unsigned"):
        Checkpoint("o", 1, ROOTS[0]).check(parse_public_key(public))
    assert parse_checkpoint(Checkpoint("o", 1, ROOTS[0]).text()).signatures == ()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "not a checkpoint"),
        ("o\n1\n\n", "2 line.s. before the blank line"),
        ("o\n01\n" + base64.b64encode(ROOTS[0]).decode() + "\n\n", "line 2"),
        ("o\n1\nAAAA\n\n", "line 3"),
        ("o\n1\n" + base64.b64encode(ROOTS[0]).decode() + "\nextra\n\n", "line 4"),
        ("o\n1\n" + base64.b64encode(ROOTS[0]).decode() + "\n\n- o AAAA\n", "line 5"),
    ],
)
def test_malformed_checkpoints_name_the_line(text: str, problem: str) -> None:
    with pytest.raises(CheckpointError, match=problem):
        parse_checkpoint(text)


def test_malformed_keys_are_refused_without_echoing_them() -> None:
    for text in ("", "not base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(ValueError, match="base64 of 32 raw bytes") as caught:
            parse_signing_key(text)
        assert not text or text not in str(caught.value)
    with pytest.raises(ValueError, match="Ed25519 public key"):
        parse_public_key("AAAA")
    with pytest.raises(ValueError, match="key id does not match"):
        parse_public_key(GO_VERIFIER.replace("c74f20a3", "c74f20a4"))


# -- a log, checkpointed, then tampered with ---------------------------------------------


def fields(index: int, **changes: Any) -> dict[str, Any]:
    line = audit_fields(call_record(request_id=f"req-{index}"), "user-1")
    return dict(line, **changes)


def write_log(path: Path, count: int, first: int = 0) -> list[bytes]:
    with AuditLog(path, user_id="user-1") as log:
        for index in range(first, first + count):
            log.append(fields(index))
    return path.read_bytes().splitlines(keepends=True)


def rechain(lines: list[bytes], start: int, change: dict[str, Any]) -> list[bytes]:
    """Lines `start`.. (0-based) edited and every hash after recomputed: a full rewrite."""
    out = lines[:start]
    prev = json.loads(lines[start - 1])["hash"] if start else GENESIS
    for number, raw in enumerate(lines[start:], start):
        line = json.loads(raw)
        body = {k: v for k, v in line.items() if k not in ("seq", "prev_hash", "hash")}
        if number == start:
            body.update(change)
        data, prev = format_line(body, number + 1, prev)
        out.append(data)
    return out


@pytest.fixture
def checkpointed(tmp_path: Path) -> tuple[Path, list[bytes], Checkpoint, str]:
    path = tmp_path / "audit.jsonl"
    lines = write_log(path, 10)
    _, key, public = new_key()
    checkpoint, leaves = checkpoint_log(path, key, tree_file=tree_file_for(path))
    assert checkpoint.size == len(leaves) == 10
    assert tree_file_for(path).read_bytes() == leaves.to_bytes()
    assert checkpoint.origin == log_origin(json.loads(lines[0])["hash"])
    return path, lines, checkpoint, public


TAMPERING = [
    # name, new content from the lines, fault, line named
    ("edited", lambda ls: [*ls[:3], ls[3].replace(b"gpt-4o-mini", b"gpt-4o-mega"), *ls[4:]],
     "edited", 4),
    ("deleted", lambda ls: ls[:3] + ls[4:], "deleted", 4),
    ("inserted", lambda ls: [*ls[:3], rechain(ls[:4], 3, {"x_request_id": "forged"})[3],
                             *ls[3:]], "inserted", 4),
    ("reordered", lambda ls: [*ls[:3], ls[4], ls[3], *ls[5:]], "reordered", 4),
    ("truncated", lambda ls: ls[:7], "truncated", 8),
    ("emptied", lambda ls: [], "truncated", 1),
    ("rewritten", lambda ls: rechain(ls, 5, {"model": "gpt-4o"}), "rewritten", 6),
    ("rewritten and cut", lambda ls: rechain(ls[:8], 2, {"http_status": 500}), "rewritten", 3),
    ("rewritten and extended", lambda ls: rechain([*ls, ls[9]], 8, {"user_id": "someone"}),
     "rewritten", 9),
    ("rewritten from the first line", lambda ls: rechain(ls, 0, {"model": "x"}),
     "another_log", 1),
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "fault", "bad_line"),
    [(name, fault, line) for name, _, fault, line in TAMPERING],
)
def test_every_tampering_is_caught_with_the_line_named(
    checkpointed: tuple[Path, list[bytes], Checkpoint, str],
    change: str,
    fault: str,
    bad_line: int,
) -> None:
    path, lines, checkpoint, _ = checkpointed
    assert verify(path, checkpoint=checkpoint, tree_file=tree_file_for(path)).ok
    tamper = next(how for name, how, _, _ in TAMPERING if name == change)
    path.write_bytes(b"".join(tamper(lines)))
    result = verify(path, checkpoint=checkpoint, tree_file=tree_file_for(path))
    assert (result.ok, result.fault, result.bad_line) == (False, fault, bad_line), result.message
    assert result.message


def test_a_rewrite_without_the_tree_file_is_caught_and_bounded(
    checkpointed: tuple[Path, list[bytes], Checkpoint, str],
) -> None:
    path, lines, checkpoint, _ = checkpointed
    path.write_bytes(b"".join(rechain(lines, 5, {"model": "gpt-4o"})))
    assert verify(path).ok  # the chain alone cannot tell
    for tree_file in (None, tree_file_for(path)):
        if tree_file is not None:  # a tree file forged to match the rewrite proves nothing
            forged = Leaves()
            assert verify(path, leaves=forged).ok
            tree_file.write_bytes(forged.to_bytes())
        result = verify(path, checkpoint=checkpoint, tree_file=tree_file)
        assert (result.fault, result.bad_line) == ("rewritten", 10)
        assert "at or before line 10" in result.message


def test_lines_appended_after_the_checkpoint_and_torn_fragments_are_fine(
    checkpointed: tuple[Path, list[bytes], Checkpoint, str],
) -> None:
    path, lines, checkpoint, _ = checkpointed
    with path.open("ab") as file:
        file.write(lines[9][:50])  # a crash mid-line: a fragment, not a leaf
    write_log(path, 3, first=10)
    result = verify(path, checkpoint=checkpoint, tree_file=tree_file_for(path))
    assert result.ok and result.tree_size == 13 and result.torn == (11,)
    newer, _ = checkpoint_log(path, None)
    assert (newer.origin, newer.size, newer.signatures) == (checkpoint.origin, 13, ())


def test_a_checkpoint_of_a_broken_or_empty_log_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = write_log(path, 4)
    path.write_bytes(lines[0] + lines[2] + lines[3])
    with pytest.raises(LogFault, match="line 2: deleted"):
        checkpoint_log(path, None)
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="nothing to checkpoint"):
        checkpoint_log(path, None)


def test_proofs_of_a_line_verify_without_the_log(
    checkpointed: tuple[Path, list[bytes], Checkpoint, str],
) -> None:
    path, lines, checkpoint, public = checkpointed
    proof = prove(path, checkpoint, request_id="req-6")
    (entry,) = proof["entries"]
    assert entry["leaf_index"] == 6 and entry["line"].encode() + b"\n" == lines[6]
    assert len(entry["inclusion_path"]) == 4  # ceil(log2(10))
    read = parse_proof(json.loads(json.dumps(proof)))
    signature, checked = check_proof(read, checkpoint, parse_public_key(public))
    assert signature is not None and checked == [(6, lines[6].decode().rstrip("\n"))]

    forged = dict(entry, line=entry["line"].replace("gpt-4o-mini", "gpt-4o-mega"))
    with pytest.raises(ProofError, match="not an intact audit line"):
        check_proof(parse_proof(dict(proof, entries=[forged])), checkpoint, None)
    rehashed = rechain(lines[:7], 6, {"model": "gpt-4o"})[6].decode().rstrip("\n")
    for bad in (dict(entry, line=rehashed), dict(entry, line=lines[5].decode().rstrip("\n")),
                dict(entry, leaf_index=5)):  # fmt: skip
        with pytest.raises(ProofError, match="do not lead to the checkpoint's tree head"):
            check_proof(parse_proof(dict(proof, entries=[bad])), checkpoint, None)
    other = Checkpoint(checkpoint.origin, 11, checkpoint.root)
    with pytest.raises(ProofError, match="the proof is for"):
        check_proof(read, other, None)
    with pytest.raises(LookupError, match="req-99"):
        prove(path, checkpoint, request_id="req-99")


def test_no_proof_is_made_from_a_log_that_lost_the_checkpoint(
    checkpointed: tuple[Path, list[bytes], Checkpoint, str],
) -> None:
    path, lines, checkpoint, _ = checkpointed
    path.write_bytes(b"".join(rechain(lines, 3, {"model": "gpt-4o"})))
    with pytest.raises(LogFault, match="line 4: rewritten"):
        prove(path, checkpoint, request_id="req-6")


# -- the commands ------------------------------------------------------------------------


def test_cli_checkpoint_verify_prove_check_proof(cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = write_log(path, 6)
    private, _, public = new_key()
    env = {"PIPECLIENT_AUDIT_SIGNING_KEY": private}
    made = cli("audit", "checkpoint", str(path), env=env)
    assert made.returncode == 0, made.stderr
    assert f"public key {public}" in made.stdout and private not in made.stdout + made.stderr
    written = path.with_name("audit.jsonl.checkpoint")
    assert parse_checkpoint(written.read_text()).size == 6
    assert oct(written.stat().st_mode & 0o777) == "0o600"
    assert oct(tree_file_for(path).stat().st_mode & 0o777) == "0o600"

    ok = cli("audit", "verify", str(path), "--checkpoint", str(written), "--public-key", public)
    assert ok.returncode == 0 and "holds the checkpoint's tree" in ok.stdout, ok.stdout
    key_file = tmp_path / "public.key"
    key_file.write_text(made.stdout.split("verifier key ")[1].strip() + "\n")
    by_file = cli(
        "audit", "verify", str(path), "--checkpoint", str(written), "--public-key", str(key_file)
    )
    assert by_file.returncode == 0, by_file.stdout + by_file.stderr

    proved = cli("audit", "prove", str(path), "--request-id", "req-2")
    assert proved.returncode == 0, proved.stderr
    assert json.loads(proved.stdout)["entries"][0]["leaf_index"] == 2
    proof_file = tmp_path / "proof.json"
    proof_file.write_text(proved.stdout)
    checked = cli(
        "audit", "check-proof", str(proof_file), "--checkpoint", str(written),
        "--public-key", public,
    )  # fmt: skip
    assert checked.returncode == 0 and lines[2].decode().strip() in checked.stdout

    # re-signed with another key: the signature no longer holds
    _, other, other_public = new_key()
    resigned = tmp_path / "resigned.checkpoint"
    plain = parse_checkpoint(written.read_text())
    resigned.write_text(Checkpoint(plain.origin, plain.size, plain.root).signed(other).text())
    for command in (
        ("audit", "verify", str(path), "--checkpoint", str(resigned), "--public-key", public),
        ("audit", "check-proof", str(proof_file), "--checkpoint", str(resigned),
         "--public-key", public),
    ):  # fmt: skip
        refused = cli(*command)
        assert refused.returncode == 1 and "not signed by this public key" in refused.stdout
    assert (
        cli("audit", "verify", str(path), "--checkpoint", str(resigned), "--public-key",
            other_public).returncode == 0
    )  # fmt: skip

    # the log cut, then rewritten: exit 1, the line named
    path.write_bytes(b"".join(lines[:4]))
    cut = cli("audit", "verify", str(path), "--checkpoint", str(written), "--public-key", public)
    assert cut.returncode == 1 and "line 5: truncated" in cut.stdout
    path.write_bytes(b"".join(rechain(lines, 1, {"model": "gpt-4o"})))
    rewritten = cli(
        "audit", "verify", str(path), "--checkpoint", str(written), "--public-key", public
    )
    assert rewritten.returncode == 1 and "line 2: rewritten" in rewritten.stdout
    assert "Traceback" not in rewritten.stderr
    refused_proof = cli("audit", "prove", str(path), "--request-id", "req-2")
    assert refused_proof.returncode == 1 and "line 2: rewritten" in refused_proof.stdout

    tampered = json.loads(proved.stdout)
    tampered["entries"][0]["line"] = tampered["entries"][0]["line"].replace("req-2", "req-X")
    proof_file.write_text(json.dumps(tampered))
    bad = cli(
        "audit", "check-proof", str(proof_file), "--checkpoint", str(written),
        "--public-key", public,
    )  # fmt: skip
    assert bad.returncode == 1 and "does not hold" in bad.stdout


def test_cli_unsigned_checkpoints_say_so(cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    out = tmp_path / "elsewhere" / "cp"
    out.parent.mkdir()
    env = {"PIPECLIENT_AUDIT__ENABLED": "true", "PIPECLIENT_AUDIT__PATH": str(path)}
    made = cli("audit", "checkpoint", "--out", str(out), env=env)
    assert made.returncode == 0, made.stderr
    assert "UNSIGNED" in made.stdout and "PIPECLIENT_AUDIT_SIGNING_KEY" in made.stdout
    assert parse_checkpoint(out.read_text()).signatures == ()
    ok = cli("audit", "verify", str(path), "--checkpoint", str(out))
    assert ok.returncode == 0 and "unsigned" in ok.stdout
    _, _, public = new_key()
    refused = cli("audit", "verify", str(path), "--checkpoint", str(out), "--public-key", public)
    assert refused.returncode == 1 and "unsigned" in refused.stdout


def test_cli_usage_errors(cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    private, _, public = new_key()
    env = {"PIPECLIENT_AUDIT_SIGNING_KEY": private}
    assert cli("audit", "checkpoint", str(path), env=env).returncode == 0
    written = str(path) + ".checkpoint"
    signed_without_key = cli("audit", "verify", str(path), "--checkpoint", written)
    assert signed_without_key.returncode == 2 and "--public-key" in signed_without_key.stderr
    bad_key = cli("audit", "verify", str(path), "--checkpoint", written, "--public-key", "nope")
    assert bad_key.returncode == 2 and "Ed25519 public key" in bad_key.stderr
    garbage = tmp_path / "garbage"
    garbage.write_text("hello\n")
    for command in (
        ("audit", "verify", str(path), "--checkpoint", str(garbage), "--public-key", public),
        ("audit", "verify", str(path), "--checkpoint", str(tmp_path / "missing")),
        ("audit", "prove", str(path), "--request-id", "req-1", "--checkpoint", str(garbage)),
        ("audit", "check-proof", str(garbage), "--checkpoint", written, "--public-key", public),
        ("audit", "verify", str(path), "--public-key", public),
    ):
        result = cli(*command)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr and result.stderr.startswith("pipeclient: ")
    missing = cli("audit", "prove", str(path), "--request-id", "req-77")
    assert missing.returncode == 1 and "req-77" in missing.stderr


def test_a_malformed_signing_key_is_a_config_error_naming_key_and_source(
    cli: RunCli, tmp_path: Path
) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 2)
    secret = "not-a-key-CANARY-1234"
    result = cli("audit", "checkpoint", str(path), env={"PIPECLIENT_AUDIT_SIGNING_KEY": secret})
    assert result.returncode == 2
    assert "audit.signing_key" in result.stderr and "base64 of 32 raw bytes" in result.stderr
    assert secret not in result.stderr + result.stdout
    config = tmp_path / "telemetry.toml"
    config.write_text(f'[audit]\nenabled = true\npath = "{path}"\nsigning_key = "{secret}"\n')
    loaded = cli("audit", "checkpoint", env={"PIPECLIENT_TELEMETRY_FILE": str(config)})
    assert loaded.returncode == 2 and "audit.signing_key" in loaded.stderr
    assert str(config) in loaded.stderr and secret not in loaded.stderr


# -- segments: rotation and retention ---------------------------------------------------


def rotating_log(
    path: Path, key: Ed25519PrivateKey | None, *, retention_days: float = 0
) -> AuditLog:
    from pipeclient._audit.rotate import SegmentRotation

    line_size = len(format_line(fields(0), 1, GENESIS)[0])
    rotation = SegmentRotation(3 * line_size + 10, retention_days, key)  # 3 lines a segment
    return AuditLog(path, user_id="user-1", rotation=rotation)


def test_the_log_rolls_into_segments_each_sealed_by_a_signed_checkpoint(tmp_path: Path) -> None:
    from pipeclient._audit.rotate import segments

    path = tmp_path / "audit.jsonl"
    _, key, public = new_key()
    with rotating_log(path, key) as log:
        for index in range(10):
            log.append(fields(index))
    sealed = segments(path)
    assert [item.name for item in sealed] == [
        "audit.jsonl.000000000001", "audit.jsonl.000000000004", "audit.jsonl.000000000007",
    ]  # fmt: skip
    seqs = []
    for number, segment in enumerate([*sealed, path]):
        assert segment.stat().st_mode & 0o777 == 0o600
        result = verify(segment)
        assert result.ok, result.message
        seqs += [json.loads(line)["seq"] for line in segment.read_bytes().splitlines()]
        if number:  # each segment's first line commits to the previous one's checkpoint
            before = sealed[number - 1].with_name(sealed[number - 1].name + ".checkpoint")
            assert result.continues == str(before)
            first = json.loads(segment.read_bytes().splitlines()[0])
            assert (
                first["prev_hash"]
                == hashlib.sha256(parse_checkpoint(before.read_text()).body.encode()).hexdigest()
            )
        if segment != path:
            final = parse_checkpoint(Path(str(segment) + ".checkpoint").read_text())
            assert final.size == 3 and final.check(parse_public_key(public))
            assert verify(segment, checkpoint=final).ok
    assert seqs == list(range(1, 11))  # one chain of seq across the segments


def test_expired_segments_go_and_the_rest_still_verify(tmp_path: Path) -> None:
    from pipeclient._audit.rotate import segments

    path = tmp_path / "audit.jsonl"
    with rotating_log(path, None, retention_days=30) as log:
        for index in range(7):
            log.append(fields(index))
        oldest, second = segments(path)
        long_ago = time.time() - 31 * 86400
        os.utime(oldest, (long_ago, long_ago))
        for index in range(7, 10):
            log.append(fields(index))  # the next roll expires the oldest segment
    remaining = segments(path)
    assert oldest not in remaining and second in remaining and len(remaining) == 2
    assert Path(str(oldest) + ".checkpoint").exists()  # size and tree head only: kept
    for segment in [*remaining, path]:
        assert verify(segment).ok, verify(segment).message
    Path(str(oldest) + ".checkpoint").unlink()  # with it gone, nothing vouches for the start
    gone = verify(second)
    assert (gone.ok, gone.fault, gone.bad_line) == (False, "deleted", 1)


def test_writers_in_many_threads_roll_one_chain(tmp_path: Path) -> None:
    from pipeclient._audit.rotate import segments

    path = tmp_path / "audit.jsonl"
    logs = [rotating_log(path, None) for _ in range(4)]  # four descriptors, four flocks

    def write(log: AuditLog, worker: int) -> None:
        for index in range(25):
            log.append(fields(worker * 100 + index))

    threads = [threading.Thread(target=write, args=(log, n)) for n, log in enumerate(logs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for log in logs:
        log.close()
    seqs = []
    for segment in [*segments(path), path]:
        assert verify(segment).ok, (segment, verify(segment).message)
        seqs += [json.loads(line)["seq"] for line in segment.read_bytes().splitlines()]
    assert seqs == list(range(1, 101))


def test_the_client_rolls_its_log_and_retention_needs_rotation(tmp_path: Path) -> None:
    import pipeclient
    from pipeclient._audit.rotate import segments
    from pipeclient.testing import MockBackend

    path = tmp_path / "audit.jsonl"
    audit = {"enabled": True, "path": str(path), "rotate_mb": 0.001, "durable": True}
    client = pipeclient.Client(backends=[MockBackend().backend()], telemetry={"audit": audit})
    for index in range(6):
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}], request_id=f"r-{index}"
        )
    client.close()
    assert segments(path) and all(verify(item).ok for item in [*segments(path), path])
    with pytest.raises(ConfigError, match=r"retention_days.*rotate_mb") as caught:
        pipeclient.Client(
            backends=[MockBackend().backend()],
            telemetry={"audit": {"enabled": True, "path": str(path), "retention_days": 365}},
        )
    assert caught.value.key is not None and "audit" in caught.value.key


# -- the gateway as a witness -------------------------------------------------------------


def test_checkpoints_are_witnessed_by_the_gateway_metadata_only(
    cli: RunCli, tmp_path: Path
) -> None:
    from pipeclient.testing import CaptureServer

    canary = "CANARY-witness-5d1e"
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, user_id="user-1") as log:
        for index in range(5):
            log.append(fields(index, x_request_id=f"{canary}-{index}", user_id=canary))
    private, _, public = new_key()
    with CaptureServer() as server:
        env = {
            "PIPECLIENT_AUDIT__WITNESS": "gateway",
            "PIPECLIENT_AUDIT_SIGNING_KEY": private,
            "PIPECLIENT_GATEWAY_URL": server.url + "/v1",
            "PIPECLIENT_GATEWAY_API_KEY": "gw-key-123",
        }
        first = cli("audit", "checkpoint", str(path), env=env)
        assert first.returncode == 0 and "witnessed by" in first.stdout, first.stdout
        with AuditLog(path, user_id="user-1") as log:
            for index in range(5, 12):
                log.append(fields(index, x_request_id=f"{canary}-{index}"))
        second = cli("audit", "checkpoint", str(path), env=env)
        assert second.returncode == 0, second.stdout + second.stderr
        requests = server.requests
    assert [(r.method, r.path) for r in requests] == [("POST", "/v1/audit/checkpoints")] * 2
    assert requests[0].headers["authorization"] == "Bearer gw-key-123"
    assert canary.encode() not in server.all_bytes()  # no line, no user id: metadata only
    one, two = (request.json() for request in requests)
    assert set(one) == {
        "schema", "origin", "tree_size", "root_hash", "checkpoint", "consistency",
    }  # fmt: skip
    assert one["schema"] == "pipeclient.audit.checkpoint.v1" and one["consistency"] is None
    note = parse_checkpoint(two["checkpoint"])
    assert note.check(parse_public_key(public)) and (two["tree_size"], note.size) == (12, 12)
    consistency = two["consistency"]
    assert consistency["from_size"] == 5 and consistency["from_root_hash"] == one["root_hash"]
    verify_consistency(
        5,
        12,
        base64.b64decode(one["root_hash"]),
        base64.b64decode(two["root_hash"]),
        [base64.b64decode(node) for node in consistency["proof"]],
    )


def test_witness_failures_and_do_not_track(cli: RunCli, tmp_path: Path) -> None:
    from pipeclient.testing import CaptureServer

    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    unset = cli("audit", "checkpoint", str(path), env={"PIPECLIENT_AUDIT__WITNESS": "gateway"})
    assert unset.returncode == 2 and "audit.witness" in unset.stderr
    assert "PIPECLIENT_GATEWAY_URL" in unset.stderr
    with CaptureServer(behaviour="error") as server:
        env = {
            "PIPECLIENT_AUDIT__WITNESS": "gateway",
            "PIPECLIENT_GATEWAY_URL": server.url,
            "PIPECLIENT_GATEWAY_API_KEY": "gw-key-123",
        }
        refused = cli("audit", "checkpoint", str(path), env=env)
        assert refused.returncode == 1 and "answered 500" in refused.stdout
        assert "gw-key-123" not in refused.stdout + refused.stderr
        assert parse_checkpoint(Path(str(path) + ".checkpoint").read_text()).size == 3
        quiet = cli("audit", "checkpoint", str(path), env={**env, "DO_NOT_TRACK": "1"})
        assert quiet.returncode == 0 and "DO_NOT_TRACK" in quiet.stdout
        assert len(server.requests) == 1


def test_a_new_checkpoint_is_refused_when_the_log_lost_the_last_one(
    cli: RunCli, tmp_path: Path
) -> None:
    path = tmp_path / "audit.jsonl"
    lines = write_log(path, 6)
    assert cli("audit", "checkpoint", str(path)).returncode == 0
    kept = Path(str(path) + ".checkpoint").read_text()
    path.write_bytes(b"".join(rechain(lines, 2, {"model": "gpt-4o"})))
    refused = cli("audit", "checkpoint", str(path))
    assert refused.returncode == 1 and "line 3: rewritten" in refused.stdout
    assert Path(str(path) + ".checkpoint").read_text() == kept  # the evidence stays


def test_status_never_shows_the_signing_key(cli: RunCli, tmp_path: Path) -> None:
    private, _, _ = new_key()
    env = {"PIPECLIENT_AUDIT__ENABLED": "true", "PIPECLIENT_AUDIT_SIGNING_KEY": private}
    for command in (("telemetry", "status"), ("telemetry", "status", "--json")):
        shown = cli(*command, env=env, cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert private not in shown.stdout + shown.stderr
        assert "audit.signing_key" in shown.stdout and "<set, 44 characters>" in shown.stdout
    unset = cli("telemetry", "status", env={"PIPECLIENT_AUDIT__ENABLED": "true"}, cwd=tmp_path)
    assert "${PIPECLIENT_AUDIT_SIGNING_KEY} (not resolved" in unset.stdout


def test_a_segment_sealed_after_a_line_cut_before_its_newline(tmp_path: Path) -> None:
    from pipeclient._audit.rotate import segments

    path = tmp_path / "audit.jsonl"
    lines = write_log(path, 3)
    path.write_bytes(b"".join(lines)[:-1])  # a crash just before the last newline
    with rotating_log(path, None) as log:
        log.append(fields(3))  # past the limit: seals the three lines
    (segment,) = segments(path)
    final = parse_checkpoint(Path(str(segment) + ".checkpoint").read_text())
    assert final.size == 3 and verify(segment, checkpoint=final).ok
    assert verify(path).ok and verify(path).continues
