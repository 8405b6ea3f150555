"""The trust (genesis) file: chain id, threshold and the validator set.

JSON, versioned (``{"format": "notary-trust", "version": 1, ...}``); each validator
is listed with its name, raw Ed25519 public key, network address and its
signed-note verifier key string, so standard note tooling can check our
checkpoints. ``docs/trust-file.md`` is the specification.

Loading validates everything and raises :class:`TrustFileError` naming the field.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chain.errors import KeyNameError, TrustFileError
from chain.keys import (
    PUBLIC_KEY_SIZE,
    check_key_name,
    decode_b64,
    key_hash,
    parse_verifier_key,
    verifier_key,
)

TRUST_FORMAT = "notary-trust"
TRUST_VERSION = 1
VALIDATOR_FORMAT = "notary-validator"
VALIDATOR_VERSION = 1
MAX_VALIDATORS = 100  # the signed-note signature cap bounds a committed checkpoint
MAX_ADDRESS_LENGTH = 2048


def fault_tolerance(n: int) -> int:
    """f, the number of faulty validators ``n`` validators tolerate: (n - 1) // 3."""
    return (n - 1) // 3


def minimum_threshold(n: int) -> int:
    """The smallest safe threshold for ``n`` validators.

    Two quorums must share an honest validator: 2t - n > f, so t = (n + f) // 2 + 1.
    For n = 3f + 1 this is the usual 2f + 1; for other n it can be larger
    (n = 5: f = 1, t = 4, since two quorums of 3 may overlap only in the faulty one).
    """
    f = fault_tolerance(n)
    return max(2 * f + 1, (n + f) // 2 + 1)


def check_address(address: str) -> None:
    """Raise :class:`TrustFileError` unless ``address`` is empty or an http(s) URL.

    An empty address means "not reachable by peers" (for example an offline key).
    """
    if not isinstance(address, str):
        raise TrustFileError("address must be a string")
    if not address:
        return
    if len(address) > MAX_ADDRESS_LENGTH:
        raise TrustFileError(f"address is longer than {MAX_ADDRESS_LENGTH} characters")
    if not address.startswith(("http://", "https://")) or len(address.split("://", 1)[1]) == 0:
        raise TrustFileError(f"address {address!r} is not an http:// or https:// URL")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in address):
        raise TrustFileError(f"address {address!r} contains whitespace or control characters")


@dataclass(frozen=True)
class Validator:
    """One validator: signed-note key name, 32-byte Ed25519 public key, peer address."""

    name: str
    public_key: bytes
    address: str = ""

    def __post_init__(self) -> None:
        try:
            check_key_name(self.name, what="validator name")
        except KeyNameError as e:
            raise TrustFileError(str(e)) from None
        if not isinstance(self.public_key, bytes) or len(self.public_key) != PUBLIC_KEY_SIZE:
            raise TrustFileError(f"validator {self.name!r}: public key must be 32 bytes")
        try:
            check_address(self.address)
        except TrustFileError as e:
            raise TrustFileError(f"validator {self.name!r}: {e}") from None

    @functools.cached_property
    def key_hash(self) -> bytes:
        """The 4-byte signed-note key ID of this validator (computed once: verifiers ask often)."""
        return key_hash(self.name, self.public_key)

    @property
    def verifier_key(self) -> str:
        """The signed-note verifier key string ``name+hash+base64(0x01||key)``."""
        return verifier_key(self.name, self.public_key)

    def to_json(self) -> dict[str, Any]:
        """The validator as it appears in the trust file's ``validators`` list."""
        return {
            "name": self.name,
            "public_key": base64.b64encode(self.public_key).decode("ascii"),
            "verifier_key": self.verifier_key,
            "address": self.address,
        }

    def to_record(self) -> dict[str, Any]:
        """The public validator record printed by ``notary keygen``."""
        return {"format": VALIDATOR_FORMAT, "version": VALIDATOR_VERSION, **self.to_json()}

    @classmethod
    def from_json(cls, data: object, where: str = "validator") -> Validator:
        """Parse a validator object (trust-file entry or public record body).

        Requires ``name``, ``public_key`` (canonical base64 of 32 bytes),
        ``verifier_key`` consistent with both, and ``address`` (string, may be
        empty). Unknown fields are refused. Raises :class:`TrustFileError`.
        """
        if not isinstance(data, Mapping):
            raise TrustFileError(f"{where}: must be a JSON object")
        unknown = set(data) - {"name", "public_key", "verifier_key", "address"}
        if unknown:
            raise TrustFileError(f"{where}: unknown field {sorted(unknown)[0]!r}")
        name = data.get("name")
        if not isinstance(name, str):
            raise TrustFileError(f"{where}: field 'name' must be a string")
        where = f"{where} {name!r}"
        public_b64 = data.get("public_key")
        public_key = decode_b64(public_b64) if isinstance(public_b64, str) else None
        if public_key is None or len(public_key) != PUBLIC_KEY_SIZE:
            raise TrustFileError(f"{where}: field 'public_key' is not base64 of 32 bytes")
        address = data.get("address", None)
        if not isinstance(address, str):
            raise TrustFileError(f"{where}: field 'address' must be a string")
        try:
            validator = cls(name=name, public_key=public_key, address=address)
        except TrustFileError as e:
            raise TrustFileError(f"{where}: {e}") from None
        vkey = data.get("verifier_key")
        if not isinstance(vkey, str):
            raise TrustFileError(f"{where}: field 'verifier_key' must be a string")
        try:
            vname, vpublic = parse_verifier_key(vkey)
        except KeyNameError as e:
            raise TrustFileError(f"{where}: field 'verifier_key': {e}") from None
        if vname != name or vpublic != public_key:
            raise TrustFileError(
                f"{where}: field 'verifier_key' does not match 'name' and 'public_key'"
            )
        return validator

    @classmethod
    def from_record(cls, data: object, where: str = "validator record") -> Validator:
        """Parse a public validator record (``{"format": "notary-validator", ...}``)."""
        if not isinstance(data, Mapping):
            raise TrustFileError(f"{where}: must be a JSON object")
        if data.get("format") != VALIDATOR_FORMAT:
            raise TrustFileError(f"{where}: field 'format' must be {VALIDATOR_FORMAT!r}")
        version = data.get("version")
        if type(version) is not int or version != VALIDATOR_VERSION:
            raise TrustFileError(f"{where}: unsupported 'version' {version!r}")
        body = {k: v for k, v in data.items() if k not in ("format", "version")}
        return cls.from_json(body, where)


@dataclass(frozen=True)
class TrustFile:
    """The validator set of one chain, and how many signatures commit a checkpoint.

    Construct through :func:`make_genesis`, :meth:`loads` or :meth:`load`, which
    validate; the constructor validates too.
    """

    chain_id: str
    threshold: int
    validators: tuple[Validator, ...]
    _by_name: dict[str, Validator] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        _check_trust(self.chain_id, self.threshold, self.validators)
        self._by_name.update((v.name, v) for v in self.validators)

    @property
    def n(self) -> int:
        """The number of validators."""
        return len(self.validators)

    @property
    def f(self) -> int:
        """The number of faulty validators tolerated: (n - 1) // 3."""
        return fault_tolerance(len(self.validators))

    def validator(self, name: str) -> Validator | None:
        """The validator named ``name``, or None."""
        return self._by_name.get(name)

    def index_of(self, name: str) -> int:
        """The position of validator ``name`` in the file; raises KeyError if absent."""
        for i, v in enumerate(self.validators):
            if v.name == name:
                return i
        raise KeyError(name)

    def verifier_keys(self) -> list[str]:
        """The signed-note verifier key strings of all validators, in file order."""
        return [v.verifier_key for v in self.validators]

    def to_json(self) -> dict[str, Any]:
        """The trust file as a JSON-ready object."""
        return {
            "format": TRUST_FORMAT,
            "version": TRUST_VERSION,
            "chain_id": self.chain_id,
            "threshold": self.threshold,
            "validators": [v.to_json() for v in self.validators],
        }

    def dumps(self) -> str:
        """The trust file text: indented JSON, keys in a fixed order, final newline."""
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"

    def save(self, path: Path) -> None:
        """Write the trust file to ``path`` (atomically: temporary file, then rename)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            tmp.write_text(self.dumps(), encoding="utf-8")
            tmp.replace(path)
        except OSError as e:
            raise TrustFileError(f"{path}: cannot write trust file: {e.strerror or e}") from None

    @classmethod
    def loads(cls, text: str | bytes, where: str = "trust file") -> TrustFile:
        """Parse and validate trust-file text; raises :class:`TrustFileError`."""
        try:
            if isinstance(text, bytes):
                text = text.decode("utf-8")
            data = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise TrustFileError(f"{where}: not valid JSON ({e})") from None
        return cls.from_json(data, where)

    @classmethod
    def load(cls, path: Path) -> TrustFile:
        """Read and validate the trust file at ``path``; raises :class:`TrustFileError`."""
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise TrustFileError(f"{path}: cannot read trust file: {e.strerror or e}") from None
        return cls.loads(raw, str(path))

    @classmethod
    def from_json(cls, data: object, where: str = "trust file") -> TrustFile:
        """Validate a parsed trust-file object; raises :class:`TrustFileError`."""
        if not isinstance(data, Mapping):
            raise TrustFileError(f"{where}: must be a JSON object")
        unknown = set(data) - {"format", "version", "chain_id", "threshold", "validators"}
        if unknown:
            raise TrustFileError(f"{where}: unknown field {sorted(unknown)[0]!r}")
        if data.get("format") != TRUST_FORMAT:
            raise TrustFileError(f"{where}: field 'format' must be {TRUST_FORMAT!r}")
        version = data.get("version")
        if type(version) is not int or version != TRUST_VERSION:
            raise TrustFileError(f"{where}: unsupported 'version' {version!r}")
        chain_id = data.get("chain_id")
        if not isinstance(chain_id, str):
            raise TrustFileError(f"{where}: field 'chain_id' must be a string")
        threshold = data.get("threshold")
        if not isinstance(threshold, int) or isinstance(threshold, bool):
            raise TrustFileError(f"{where}: field 'threshold' must be an integer")
        entries = data.get("validators")
        if not isinstance(entries, list):
            raise TrustFileError(f"{where}: field 'validators' must be a list")
        validators = tuple(
            Validator.from_json(entry, f"{where}: validators[{i}]")
            for i, entry in enumerate(entries)
        )
        try:
            return cls(chain_id=chain_id, threshold=threshold, validators=validators)
        except TrustFileError as e:
            raise TrustFileError(f"{where}: {e}") from None


def _check_trust(chain_id: str, threshold: int, validators: Sequence[Validator]) -> None:
    try:
        check_key_name(chain_id, what="chain_id")
    except KeyNameError as e:
        raise TrustFileError(f"field 'chain_id': {e}") from None
    if not validators:
        raise TrustFileError("field 'validators': at least one validator is needed")
    if len(validators) > MAX_VALIDATORS:
        raise TrustFileError(f"field 'validators': more than {MAX_VALIDATORS} validators")
    if not all(isinstance(v, Validator) for v in validators):
        raise TrustFileError("field 'validators': entries must be Validator objects")
    names: set[str] = set()
    keys: set[bytes] = set()
    for v in validators:
        if v.name in names:
            raise TrustFileError(f"field 'validators': name {v.name!r} appears twice")
        if v.public_key in keys:
            raise TrustFileError(f"field 'validators': public key of {v.name!r} appears twice")
        names.add(v.name)
        keys.add(v.public_key)
    n = len(validators)
    low = minimum_threshold(n)
    if not isinstance(threshold, int) or isinstance(threshold, bool):
        raise TrustFileError("field 'threshold' must be an integer")
    if not low <= threshold <= n:
        raise TrustFileError(
            f"field 'threshold' is {threshold}; with n={n} validators (f={fault_tolerance(n)})"
            f" it must be between {low} and {n}"
        )


def make_genesis(
    chain_id: str, validators: Sequence[Validator], threshold: int | None = None
) -> TrustFile:
    """A validated trust file; ``threshold`` defaults to the minimum safe one (2f+1 for 3f+1).

    Validators keep the given order (the order may drive leader rotation).
    Raises :class:`TrustFileError` naming the field at fault.
    """
    validators = tuple(validators)
    if threshold is None:
        threshold = minimum_threshold(len(validators)) if validators else 1
    return TrustFile(chain_id=chain_id, threshold=threshold, validators=validators)
