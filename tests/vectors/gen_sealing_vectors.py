"""Generate tests/vectors/sealing/{valid,tampered}.json: sealed streams per docs/sealing.md.

Run from the repository root: ``python -m tests.vectors.gen_sealing_vectors``. The
output is deterministic: master keys, data keys and nonce prefixes are fixed bytes
(the data key is given in valid cases so that an implementation can check its records
step by step). Records are tiny (32 bytes) to keep the vectors readable.

Each case: ``desc``; ``keyring`` (the master keys the opener holds, oldest first:
``key_id`` and ``key_hex``); ``doc_id``; ``encryption`` (the manifest's object);
``sealed_hex``; and either ``plaintext_hex`` (valid) or ``want_error`` with the
``reason`` and ``record`` an opener must report (tampered). The expected errors are
written here by hand, from the order of checks in docs/sealing.md section 6, not
computed by the implementation under test.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from notary.sealing import MasterKey, RecordSealer, SealParams, derive_key_id, seal_bytes

OUT = Path(__file__).resolve().parent / "sealing"
RECORD = 32
STRIDE = RECORD + 16

KEY_A = bytes(range(0x00, 0x20))
KEY_B = bytes(range(0x40, 0x60))
MASTER_A = MasterKey(derive_key_id(KEY_A), KEY_A)
MASTER_B = MasterKey("hsm-2026-q1", KEY_B)
DATA_KEY = bytes(range(0x80, 0xA0))
PREFIX = bytes.fromhex("01020304050607")
DOC = "4f1c2a9e0b7d4e3f8a6c5b2d1e0f9a8b"


def _plaintext(n: int) -> bytes:
    text = b"Due diligence draft: confidential terms of Project Nightjar. " * 4
    return text[:n]


def _ring(*keys: MasterKey) -> list[dict[str, str]]:
    return [{"key_id": k.key_id, "key_hex": k.key.hex()} for k in keys]


def _seal(
    plaintext: bytes, master: MasterKey = MASTER_A, doc_id: str = DOC
) -> tuple[bytes, SealParams]:
    sealer = RecordSealer(
        doc_id, master, data_key=DATA_KEY, nonce_prefix=PREFIX, record_size=RECORD
    )
    sealed = seal_bytes(sealer, plaintext)
    return sealed, sealer.params


def _valid(
    desc: str, n: int, master: MasterKey = MASTER_A, ring: tuple[MasterKey, ...] = (MASTER_A,)
) -> dict[str, Any]:
    plaintext = _plaintext(n)
    sealed, params = _seal(plaintext, master)
    return {
        "desc": desc,
        "keyring": _ring(*ring),
        "doc_id": DOC,
        "encryption": params.to_json(),
        "data_key_hex": DATA_KEY.hex(),
        "plaintext_hex": plaintext.hex(),
        "sealed_hex": sealed.hex(),
    }


def _tampered(
    desc: str,
    sealed: bytes,
    params: SealParams,
    reason: str,
    record: int | None,
    *,
    ring: tuple[MasterKey, ...] = (MASTER_A,),
    doc_id: str = DOC,
) -> dict[str, Any]:
    return {
        "desc": desc,
        "keyring": _ring(*ring),
        "doc_id": doc_id,
        "encryption": params.to_json(),
        "sealed_hex": sealed.hex(),
        "want_error": {"reason": reason, "record": record},
    }


def _flip(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 0x01
    return bytes(out)


def valid_cases() -> list[dict[str, Any]]:
    return [
        _valid("empty document: one empty final record (16-byte tag)", 0),
        _valid("one byte", 1),
        _valid("exactly one record: the full record is final", RECORD),
        _valid("one record and one byte", RECORD + 1),
        _valid("three full records, the last one final", 3 * RECORD),
        _valid("four records, the last of 4 bytes", 100),
        _valid("operator-chosen key id", 100, MASTER_B, (MASTER_B,)),
        _valid("sealed with the older of two configured keys", 70, MASTER_A, (MASTER_A, MASTER_B)),
    ]


def tampered_cases() -> list[dict[str, Any]]:
    sealed, params = _seal(_plaintext(100))  # records of 32, 32, 32, 4 plaintext bytes
    records = [sealed[i : i + STRIDE] for i in range(0, len(sealed), STRIDE)]
    exact, exact_params = _seal(_plaintext(96))  # three full records
    wrapped = bytearray(params.wrapped_key)
    wrapped[9] ^= 0x80
    return [
        _tampered(
            "flipped byte in the ciphertext of record 1",
            _flip(sealed, STRIDE + 3),
            params,
            "record_auth",
            1,
        ),
        _tampered(
            "flipped byte in the tag of the final record",
            _flip(sealed, len(sealed) - 1),
            params,
            "record_auth",
            3,
        ),
        _tampered(
            "records 0 and 1 swapped",
            records[1] + records[0] + records[2] + records[3],
            params,
            "record_auth",
            0,
        ),
        _tampered(
            "record 0 duplicated in place of record 1",
            records[0] + records[0] + records[2] + records[3],
            params,
            "record_auth",
            1,
        ),
        _tampered(
            "truncated: the final record dropped", sealed[: 3 * STRIDE], params, "truncated", 3
        ),
        _tampered("truncated inside the final record", sealed[:-5], params, "truncated", 3),
        _tampered(
            "truncated, plaintext_size rewritten to match: record 2 is not final",
            sealed[: 3 * STRIDE],
            replace(params, plaintext_size=3 * RECORD),
            "record_auth",
            2,
        ),
        _tampered("extended: a record appended", sealed + records[3], params, "trailing_data", 3),
        _tampered(
            "extended, plaintext_size rewritten to match: the old final record is not last",
            exact + exact[STRIDE : 2 * STRIDE],
            replace(exact_params, plaintext_size=4 * RECORD),
            "record_auth",
            2,
        ),
        _tampered(
            "nonce prefix changed", sealed, replace(params, nonce_prefix=bytes(7)), "record_auth", 0
        ),
        _tampered("records of another document", sealed, params, "record_auth", 0, doc_id="0" * 32),
        _tampered(
            "key id not in the keyring", sealed, params, "unknown_key", None, ring=(MASTER_B,)
        ),
        _tampered(
            "another master key under the key id",
            sealed,
            params,
            "unwrap_failed",
            None,
            ring=(MasterKey(MASTER_A.key_id, KEY_B),),
        ),
        _tampered(
            "wrapped key damaged",
            sealed,
            replace(params, wrapped_key=bytes(wrapped)),
            "unwrap_failed",
            None,
        ),
    ]


def files() -> dict[str, dict[str, Any]]:
    return {
        "valid.json": {"record_size": RECORD, "cases": valid_cases()},
        "tampered.json": {"record_size": RECORD, "cases": tampered_cases()},
    }


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, content in files().items():
        (OUT / name).write_text(json.dumps(content, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
