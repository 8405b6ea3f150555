"""The trust (genesis) file: construction, JSON round trip, validation of every field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from chain.errors import TrustFileError
from chain.keys import Signer, parse_verifier_key
from chain.trust import (
    TrustFile,
    Validator,
    fault_tolerance,
    make_genesis,
    minimum_threshold,
)

CHAIN = "notary.example/chain-1"


def _validators(n: int) -> list[Validator]:
    out = []
    for i in range(n):
        signer = Signer.from_seed(f"v{i}.notary.example", bytes([i + 1]) * 32)
        out.append(Validator(signer.name, signer.public_key, f"http://127.0.0.1:{7000 + i}"))
    return out


@pytest.mark.parametrize(
    ("n", "f", "t"),
    [(1, 0, 1), (2, 0, 2), (3, 0, 2), (4, 1, 3), (5, 1, 4), (6, 1, 4), (7, 2, 5), (10, 3, 7)],
)
def test_default_threshold(n: int, f: int, t: int) -> None:
    assert fault_tolerance(n) == f
    assert minimum_threshold(n) == t
    trust = make_genesis(CHAIN, _validators(n))
    assert trust.f == f
    assert trust.n == n
    assert trust.threshold == t
    # Quorum intersection: two quorums share more than f validators.
    assert 2 * t - n > f


def test_threshold_bounds() -> None:
    vs = _validators(4)
    assert make_genesis(CHAIN, vs, threshold=4).threshold == 4
    for bad in (0, 1, 2, 5, -1):
        with pytest.raises(TrustFileError, match="threshold"):
            make_genesis(CHAIN, vs, threshold=bad)


def test_round_trip_and_verifier_keys(tmp_path: Path) -> None:
    trust = make_genesis(CHAIN, _validators(4))
    path = tmp_path / "trust.json"
    trust.save(path)
    loaded = TrustFile.load(path)
    assert loaded == trust
    assert loaded.dumps() == path.read_text()
    data = json.loads(path.read_text())
    assert data["format"] == "notary-trust"
    assert data["version"] == 1
    assert data["chain_id"] == CHAIN
    assert data["threshold"] == 3
    assert [v["name"] for v in data["validators"]] == [v.name for v in trust.validators]
    for entry, vkey in zip(data["validators"], trust.verifier_keys(), strict=True):
        assert entry["verifier_key"] == vkey
        assert parse_verifier_key(vkey) == (
            entry["name"],
            trust.validator(entry["name"]).public_key,
        )  # type: ignore[union-attr]
    assert trust.index_of("v2.notary.example") == 2
    assert trust.validator("nobody") is None


def test_validator_record_round_trip() -> None:
    v = _validators(1)[0]
    record = v.to_record()
    assert record["format"] == "notary-validator"
    assert Validator.from_record(record) == v
    with pytest.raises(TrustFileError, match="format"):
        Validator.from_record({**record, "format": "x"})
    with pytest.raises(TrustFileError, match="version"):
        Validator.from_record({**record, "version": 2})


def _good() -> dict[str, Any]:
    return make_genesis(CHAIN, _validators(4)).to_json()


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    target: Any = doc
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if isinstance(target, list) else target[key]
    last = keys[-1]
    if value is _DELETE:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return doc


_DELETE = object()
_OTHER_KEY = "AQ" * 21 + "A="  # base64 of 32 bytes, some other key


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("format", "other", "format"),
        ("version", 2, "version"),
        ("version", True, "version"),
        ("version", 1.0, "version"),
        ("chain_id", "has space", "chain_id"),
        ("chain_id", "a+b", "chain_id"),
        ("chain_id", "", "chain_id"),
        ("chain_id", 7, "chain_id"),
        ("threshold", 2, "threshold"),
        ("threshold", 5, "threshold"),
        ("threshold", "3", "threshold"),
        ("threshold", 3.0, "threshold"),
        ("threshold", True, "threshold"),
        ("validators", [], "validators"),
        ("validators", {}, "validators"),
        ("extra", 1, "extra"),
        ("validators.0", "x", "validators[0]"),
        ("validators.0.name", "v 0", "name"),
        ("validators.0.name", 3, "name"),
        ("validators.1.public_key", "AAAA", "public_key"),
        ("validators.1.public_key", _OTHER_KEY, "verifier_key"),
        ("validators.1.verifier_key", "nonsense", "verifier_key"),
        ("validators.1.verifier_key", _DELETE, "verifier_key"),
        ("validators.1.address", 5, "address"),
        ("validators.1.address", "ftp://x", "address"),
        ("validators.1.address", "http://a b", "address"),
        ("validators.2.extra", 1, "extra"),
    ],
)
def test_load_rejects_with_field_name(path: str, value: Any, field: str) -> None:
    doc = _set(_good(), path, value)
    with pytest.raises(TrustFileError) as info:
        TrustFile.loads(json.dumps(doc))
    assert field in str(info.value)


def test_duplicate_names_and_keys_are_rejected() -> None:
    doc = _good()
    dup = copy.deepcopy(doc)
    dup["validators"][3] = dup["validators"][0]
    with pytest.raises(TrustFileError, match="appears twice"):
        TrustFile.loads(json.dumps(dup))
    vs = _validators(4)
    same_key = Validator("other.example", vs[0].public_key)
    with pytest.raises(TrustFileError, match="public key"):
        make_genesis(CHAIN, [*vs[:3], same_key])


def test_verifier_key_of_another_validator_is_rejected() -> None:
    doc = _good()
    doc["validators"][0]["verifier_key"] = doc["validators"][1]["verifier_key"]
    with pytest.raises(TrustFileError, match="does not match"):
        TrustFile.loads(json.dumps(doc))


def test_unreadable_and_garbage(tmp_path: Path) -> None:
    with pytest.raises(TrustFileError, match="cannot read"):
        TrustFile.load(tmp_path / "none.json")
    (tmp_path / "g.json").write_bytes(b"{not json")
    with pytest.raises(TrustFileError, match="JSON"):
        TrustFile.load(tmp_path / "g.json")
    (tmp_path / "l.json").write_text("[]")
    with pytest.raises(TrustFileError, match="object"):
        TrustFile.load(tmp_path / "l.json")


def test_empty_address_is_allowed() -> None:
    v = Validator("offline.example", _validators(1)[0].public_key, "")
    assert make_genesis(CHAIN, [v]).validators[0].address == ""
