"""Generate tests/vectors/checkpoint/*.json: keys, a trust file, signed checkpoints.

Run from the repository root: ``python -m tests.vectors.gen_checkpoint_vectors``.
Deterministic: validator keys come from fixed seeds and Ed25519 signatures are
deterministic, so regenerating gives identical files (a test checks this).

Files:
- ``keys.json``: per validator (and one outsider): name, seed, public key, key hash,
  verifier key; the worked example of docs/checkpoint-format.md.
- ``trust.json``: the trust file of the four validators (threshold 3).
- ``checkpoints.json``: cases, each with ``desc``, the checkpoint ``note`` text,
  ``want_error`` (null, ``NoteError``, ``CheckpointOriginError`` or
  ``QuorumNotMetError``), ``want_signers`` (distinct valid trusted signers, note
  order) and ``want_statuses`` (one per signature line: valid, invalid, unknown,
  duplicate, malformed; well-formed lines first in note order, then malformed
  ones), both null when the note or body is malformed or the origin is wrong.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from chain.checkpoint import Checkpoint, checkpoint_signature, sign_checkpoint
from chain.keys import Signer
from chain.merkle import empty_root, leaf_hash, root_hash
from chain.note import NoteSignature
from chain.trust import TrustFile, Validator, make_genesis

OUT = Path(__file__).resolve().parent / "checkpoint"
CHAIN_ID = "notary.example/vectors"


def seed(i: int) -> bytes:
    """The seed of validator ``i``: SHA-256("notary/checkpoint-vectors/seed/" || i)."""
    return hashlib.sha256(f"notary/checkpoint-vectors/seed/{i}".encode()).digest()


def signers() -> list[Signer]:
    """The four validators v0..v3 of the vectors."""
    return [Signer.from_seed(f"v{i}.notary.example", seed(i)) for i in range(4)]


def outsider() -> Signer:
    """A well-formed signer that is not in the trust file."""
    return Signer.from_seed("v9.notary.example", seed(9))


def trust_file() -> TrustFile:
    """The trust file of the vectors (n = 4, f = 1, threshold 3)."""
    return make_genesis(
        CHAIN_ID,
        [
            Validator(s.name, s.public_key, f"http://127.0.0.1:{7400 + i}")
            for i, s in enumerate(signers())
        ],
    )


def checkpoint(size: int = 5, extensions: tuple[str, ...] = ()) -> Checkpoint:
    """A checkpoint whose root is the RFC 9162 root of entries b"entry 0".. b"entry {size-1}"."""
    leaves = [leaf_hash(f"entry {i}".encode()) for i in range(size)]
    root = root_hash(leaves) if leaves else empty_root()
    return Checkpoint(CHAIN_ID, size, root, extensions)


def note(cp: Checkpoint, lines: list[str]) -> str:
    """The note text, assembled by hand so that probes may carry any lines."""
    return cp.body() + "\n" + "".join(lines)


def _flip(sig: NoteSignature, *, in_key_hash: bool = False, index: int = 10) -> str:
    if in_key_hash:
        kh = bytearray(sig.key_hash)
        kh[0] ^= 0x01
        return NoteSignature(sig.name, bytes(kh), sig.signature).line
    raw = bytearray(sig.signature)
    raw[index] ^= 0x01
    return NoteSignature(sig.name, sig.key_hash, bytes(raw)).line


def _case(
    desc: str,
    text: str,
    error: str | None,
    signers_: list[str] | None,
    statuses: list[str] | None,
) -> dict[str, Any]:
    return {
        "desc": desc,
        "note": text,
        "want_error": error,
        "want_signers": signers_,
        "want_statuses": statuses,
    }


def cases() -> list[dict[str, Any]]:
    """All checkpoint cases: committed ones first, then probes."""
    v = signers()
    names = [s.name for s in v]
    out9 = outsider()
    cp = checkpoint()
    line = [sign_checkpoint(cp, s) for s in v]
    sig = [checkpoint_signature(cp, s) for s in v]
    quorum = "QuorumNotMetError"
    out: list[dict[str, Any]] = []

    def ok(desc: str, text: str, who: list[int], statuses: list[str]) -> None:
        out.append(_case(desc, text, None, [names[i] for i in who], statuses))

    def short(desc: str, text: str, who: list[int], statuses: list[str]) -> None:
        out.append(_case(desc, text, quorum, [names[i] for i in who], statuses))

    def bad(desc: str, text: str, error: str) -> None:
        out.append(_case(desc, text, error, None, None))

    # Committed checkpoints.
    ok("3 of 4 validators sign", note(cp, line[:3]), [0, 1, 2], ["valid"] * 3)
    ok("4 of 4 validators sign", note(cp, line), [0, 1, 2, 3], ["valid"] * 4)
    ok(
        "3 of 4 in another order",
        note(cp, [line[3], line[1], line[0]]),
        [3, 1, 0],
        ["valid"] * 3,
    )
    empty = checkpoint(0)
    ok(
        "empty tree (size 0, root SHA-256 of nothing)",
        note(empty, [sign_checkpoint(empty, s) for s in v[1:]]),
        [1, 2, 3],
        ["valid"] * 3,
    )
    ext = checkpoint(5, ("extension line one",))
    ok(
        "checkpoint with an extension line",
        note(ext, [sign_checkpoint(ext, s) for s in v[:3]]),
        [0, 1, 2],
        ["valid"] * 3,
    )
    ok(
        "3 valid plus a signature by a key outside the trust file",
        note(cp, [*line[:3], sign_checkpoint(cp, out9)]),
        [0, 1, 2],
        ["valid"] * 3 + ["unknown"],
    )
    ok(
        "3 valid plus malformed signature lines (ignored)",
        note(cp, [line[0], "— v3.notary.example\n", line[1], "garbage\n", line[2]]),
        [0, 1, 2],
        ["valid"] * 3 + ["malformed"] * 2,
    )
    ok(
        "3 valid plus a forged signature of the fourth (ignored)",
        note(cp, [*line[:3], _flip(sig[3])]),
        [0, 1, 2],
        ["valid"] * 3 + ["invalid"],
    )
    ok(
        "3 valid plus a duplicate line",
        note(cp, [line[0], line[1], line[0], line[2]]),
        [0, 1, 2],
        ["valid", "valid", "duplicate", "valid"],
    )

    # Probes that count less than the threshold.
    short("too few signers: 2 of 4", note(cp, line[:2]), [0, 1], ["valid"] * 2)
    short("too few signers: 1 of 4", note(cp, line[2:3]), [2], ["valid"])
    short(
        "forged signature: one byte flipped",
        note(cp, [line[0], _flip(sig[1]), line[2]]),
        [0, 2],
        ["valid", "invalid", "valid"],
    )
    short(
        "forged signature: last byte flipped",
        note(cp, [line[0], line[1], _flip(sig[2], index=63)]),
        [0, 1],
        ["valid", "valid", "invalid"],
    )
    short(
        "key hash flipped: the line names no trusted key",
        note(cp, [line[0], line[1], _flip(sig[2], in_key_hash=True)]),
        [0, 1],
        ["valid", "valid", "unknown"],
    )
    short(
        "signature by a key not in the trust file",
        note(cp, [line[0], line[1], sign_checkpoint(cp, out9)]),
        [0, 1],
        ["valid", "valid", "unknown"],
    )
    impostor = Signer.from_seed(names[2], seed(10))
    short(
        "validator name with another key (key hash differs)",
        note(cp, [line[0], line[1], sign_checkpoint(cp, impostor)]),
        [0, 1],
        ["valid", "valid", "unknown"],
    )
    forged_id = NoteSignature(
        names[2], sig[2].key_hash, checkpoint_signature(cp, impostor).signature
    )
    short(
        "validator name and key hash, signature by another key",
        note(cp, [line[0], line[1], forged_id.line]),
        [0, 1],
        ["valid", "valid", "invalid"],
    )
    renamed = NoteSignature(names[3], sig[2].key_hash, sig[2].signature)
    short(
        "valid signature under another validator's name",
        note(cp, [line[0], line[1], renamed.line]),
        [0, 1],
        ["valid", "valid", "unknown"],
    )
    short(
        "duplicate signature lines of one validator count once",
        note(cp, [line[0], line[1], line[1]]),
        [0, 1],
        ["valid", "valid", "duplicate"],
    )
    short(
        "the same validator three times",
        note(cp, [line[0], line[0], line[0]]),
        [0],
        ["valid", "duplicate", "duplicate"],
    )
    other = checkpoint(6)
    short(
        "one signature over a different body (next tree size)",
        note(cp, [line[0], line[1], sign_checkpoint(other, v[2])]),
        [0, 1],
        ["valid", "valid", "invalid"],
    )
    tampered = cp.body().replace("\n5\n", "\n6\n")
    short(
        "body edited after signing (tree size)",
        tampered + "\n" + "".join(line[:3]),
        [],
        ["invalid"] * 3,
    )
    root_b64 = base64.b64encode(cp.root).decode()
    other_root = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    short(
        "body edited after signing (root)",
        cp.body().replace(root_b64, other_root) + "\n" + "".join(line),
        [],
        ["invalid"] * 4,
    )
    short(
        "hyphen instead of em dash on one line: malformed, not counted",
        note(cp, [line[0], line[1], line[2].replace("—", "-", 1)]),
        [0, 1],
        ["valid", "valid", "malformed"],
    )
    short(
        "only malformed lines",
        note(cp, ["— v0.notary.example !!!!\n", "— \n", "—— v1.notary.example AAAA\n"]),
        [],
        ["malformed"] * 3,
    )

    # Wrong origin: a valid note of another chain.
    foreign = Checkpoint("other.example/chain", cp.size, cp.root)
    bad(
        "wrong origin (all four validators signed it)",
        note(foreign, [sign_checkpoint(foreign, s) for s in v]),
        "CheckpointOriginError",
    )

    # Malformed notes or bodies: rejected whole.
    good = note(cp, line[:3])
    bad("missing final newline", good[:-1], "NoteError")
    bad("no blank line before signatures", good.replace("\n\n", "\n", 1), "NoteError")
    bad("no signature lines", cp.body() + "\n", "NoteError")
    bad("trailing blank line", good + "\n", "NoteError")
    bad("carriage return in the note", good.replace("\n5\n", "\r\n5\n", 1), "NoteError")
    bad("tab in the body", good.replace("vectors\n", "vectors\t\n", 1), "NoteError")
    leading_zero = cp.body().replace("\n5\n", "\n05\n")
    bad("tree size with a leading zero", leading_zero + "\n" + "".join(line[:3]), "NoteError")
    bad(
        "tree size with a plus sign",
        cp.body().replace("\n5\n", "\n+5\n") + "\n" + "".join(line[:3]),
        "NoteError",
    )
    short_root = base64.b64encode(cp.root[:31]).decode()
    bad(
        "root of 31 bytes",
        cp.body().replace(root_b64, short_root) + "\n" + "".join(line[:3]),
        "NoteError",
    )
    bad(
        "root without base64 padding",
        cp.body().replace(root_b64, root_b64.rstrip("=")) + "\n" + "".join(line[:3]),
        "NoteError",
    )
    bad("body of two lines", f"{CHAIN_ID}\n5\n\n" + "".join(line[:3]), "NoteError")
    bad("preceding garbage line", "garbage\n" + good, "NoteError")
    bad(
        "too many signature lines (101)",
        note(cp, [*line[:3], *([sign_checkpoint(cp, out9)] * 98)]),
        "NoteError",
    )
    return out


def keys_document() -> dict[str, Any]:
    """The worked key derivations: seed -> public key -> key hash -> verifier key."""
    entries = []
    for s, i in [*zip(signers(), range(4), strict=True), (outsider(), 9)]:
        entries.append(
            {
                "name": s.name,
                "seed_hex": seed(i).hex(),
                "public_key": base64.b64encode(s.public_key).decode(),
                "key_hash_hex": s.key_hash.hex(),
                "verifier_key": s.verifier_key,
                "in_trust_file": i != 9,
            }
        )
    return {"seed_rule": "SHA-256('notary/checkpoint-vectors/seed/' || decimal i)", "keys": entries}


def documents() -> dict[str, str]:
    """File name -> exact file text."""

    def dump(obj: Any) -> str:
        return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"

    return {
        "keys.json": dump(keys_document()),
        "trust.json": trust_file().dumps(),
        "checkpoints.json": dump({"trust_file": "trust.json", "cases": cases()}),
    }


def main() -> None:
    """Write the vector files."""
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in documents().items():
        (OUT / name).write_text(text, encoding="utf-8")
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
