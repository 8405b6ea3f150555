"""Generate tests/vectors/receipt/receipts.json: valid and tampered receipts.

Run from the repository root: ``python -m tests.vectors.gen_receipt_vectors``. The
output is deterministic (keys and salts come from fixed seeds). Each case has a
``desc``, the document as hex (or only its digest), the receipt text, and
``want_valid`` with ``want_failed_check``: the name of the first check that must fail
(see notary/verify.py and docs/receipt-format.md).
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from chain.checkpoint import Checkpoint, assemble_checkpoint, sign_checkpoint
from chain.keys import Signer
from chain.merkle import inclusion_proof, root_hash
from tests.notary import receipt_factory as rf

OUT = Path(__file__).resolve().parent / "receipt" / "receipts.json"


def _case(desc: str, document: bytes, receipt: str, failed: str | None) -> dict[str, Any]:
    return {
        "desc": desc,
        "document_hex": document.hex(),
        "receipt": receipt,
        "want_valid": failed is None,
        "want_failed_check": failed,
    }


def _edit(receipt_json: dict[str, Any], **changes: Any) -> str:
    obj = json.loads(json.dumps(receipt_json))
    for key, value in changes.items():
        if key == "document_size":
            obj["document"]["size"] = value
        else:
            obj[key] = value
    return json.dumps(obj, indent=1) + "\n"


def cases() -> dict[str, Any]:
    fx = rf.build()
    good = fx.receipt.to_json()
    doc = fx.document
    out = [_case("valid receipt, 3 of 4 validators", doc, fx.receipt.dumps(), None)]
    four = rf.build(sign_with=(0, 1, 2, 3))
    out.append(_case("valid receipt, 4 of 4 validators", doc, four.receipt.dumps(), None))
    single = rf.build(tree_size=1, leaf_index=0)
    out.append(_case("valid receipt, tree of one entry", doc, single.receipt.dumps(), None))
    edited = bytearray(doc)
    edited[0] ^= 1
    out.append(_case("document edited (one bit)", bytes(edited), fx.receipt.dumps(), "document"))
    out.append(_case("document with a byte appended", doc + b"\0", fx.receipt.dumps(), "document"))
    out.append(_case("salt changed", doc, _edit(good, salt="00" * 32), "commitment"))
    out.append(_case("leaf index changed", doc, _edit(good, leaf_index=5), "inclusion"))
    out.append(_case("tree size changed", doc, _edit(good, tree_size=12), "checkpoint"))
    out.append(_case("chain id changed", doc, _edit(good, chain_id="other/x"), "chain_id"))
    out.append(_case("size changed", doc, _edit(good, document_size=18), "document"))
    out.append(_case("unknown version", doc, _edit(good, version=2), "receipt"))
    entry = good["entry"].replace("document", "Document")
    out.append(_case("entry type edited", doc, _edit(good, entry=entry), "entry"))
    other = [base64.b64encode(h).decode() for h in inclusion_proof(7, list(fx.leaves))]
    out.append(_case("proof of another leaf", doc, _edit(good, inclusion_proof=other), "inclusion"))
    for i in range(len(good["inclusion_proof"])):
        proof = list(good["inclusion_proof"])
        raw = bytearray(base64.b64decode(proof[i]))
        raw[0] ^= 0x80
        proof[i] = base64.b64encode(bytes(raw)).decode()
        out.append(
            _case(
                f"proof element {i} bit-flipped",
                doc,
                _edit(good, inclusion_proof=proof),
                "inclusion",
            )
        )
    proof = list(good["inclusion_proof"])
    out.append(
        _case("proof element removed", doc, _edit(good, inclusion_proof=proof[:-1]), "inclusion")
    )
    out.append(
        _case(
            "proof element added", doc, _edit(good, inclusion_proof=[*proof, proof[0]]), "inclusion"
        )
    )
    body, _, sigs = fx.receipt.checkpoint.partition("\n\n")
    lines = sigs.splitlines()
    name, b64 = lines[0].rsplit(" ", 1)
    raw = bytearray(base64.b64decode(b64))
    raw[-1] ^= 1
    forged = (
        body
        + "\n\n"
        + "\n".join([f"{name} {base64.b64encode(bytes(raw)).decode()}", *lines[1:]])
        + "\n"
    )
    out.append(
        _case("one of three signatures forged", doc, _edit(good, checkpoint=forged), "threshold")
    )
    dup = body + "\n\n" + (lines[0] + "\n") * 3
    out.append(
        _case("one signature repeated three times", doc, _edit(good, checkpoint=dup), "threshold")
    )
    cp = Checkpoint(rf.CHAIN_ID, fx.receipt.tree_size, root_hash(list(fx.leaves)))
    strangers = [Signer.from_seed(f"validator-{i}", bytes([i + 1]) * 32) for i in range(4)]
    untrusted = assemble_checkpoint(cp, [sign_checkpoint(cp, k) for k in strangers])
    out.append(
        _case(
            "signed by keys not in the trust file",
            doc,
            _edit(good, checkpoint=untrusted),
            "threshold",
        )
    )
    two = rf.build(sign_with=(1, 3))
    out.append(_case("only 2 of 4 validators", doc, two.receipt.dumps(), "threshold"))
    foreign = rf.build(chain_id="other.chain/prod", sign_with=(0, 1, 2))
    out.append(_case("receipt of another chain", doc, foreign.receipt.dumps(), "chain_id"))
    swapped = replace(
        fx.receipt,
        checkpoint=rf.build(tree_size=11, leaf_index=3, document=b"x").receipt.checkpoint,
    )
    out.append(
        _case("checkpoint of another log of the same size", doc, swapped.dumps(), "inclusion")
    )
    return {
        "desc": "Receipt verification vectors; see docs/receipt-format.md",
        "trust": fx.trust.to_json(),
        "cases": out,
    }


def main() -> None:
    OUT.write_text(json.dumps(cases(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
