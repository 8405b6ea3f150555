"""Sealing at the service's edges: master keys from the settings, sealed puts and reads.

Which documents are sealed: every ``dd_draft`` and every upload marked
``confidential=true`` (:func:`must_seal`). Their digest, size, receipt and anchored
commitment are of the plaintext (a court verifies the original file); what reaches the
storage nodes is the sealed stream (``docs/sealing.md``), whose parameters go into the
storage manifest's ``encryption`` object. The plaintext digest is kept out of the
manifest on purpose: the nodes' operators must not be able to confirm a guess of a
confidential document.

Master keys (:func:`load_keyring`): ``[sealing] master_key`` (usually the environment
variable ``NOTARY_SEALING_MASTER_KEY``) or ``[sealing] master_key_file`` (mode 0600 or
stricter); with neither, the embedded default (folder storage under ``data_dir``) keeps
one in ``<data_dir>/master.key``, created on first start. A production deployment with
neither runs without sealing: confidential uploads are refused with
``sealing_key_unavailable`` (503). Keys never appear in logs or error messages.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Any

from notary import errors
from notary.config import Settings
from notary.metadata import DocumentKind, UploadMetadata
from notary.sealing import (
    DEFAULT_RECORD_SIZE,
    KEY_SIZE,
    Keyring,
    RandomBytes,
    RecordOpener,
    RecordSealer,
    SealingError,
    SealParams,
    format_master_key,
    parse_keyring,
    seal_stream,
    unseal_range,
)
from storage import DocumentStore, Manifest
from storage.workers import run_cpu

log = logging.getLogger(__name__)

EMBEDDED_KEY_FILE = "master.key"
# Hash chunks this large in a worker: hashlib releases the GIL, so it runs beside the loop.
_HASH_IN_THREAD = 64 * 1024


def must_seal(meta: UploadMetadata) -> bool:
    """Whether an upload is sealed: due-diligence drafts always, others when confidential."""
    return meta.kind is DocumentKind.DD_DRAFT or meta.confidential


def is_sealed(manifest_json: str | None) -> bool:
    """Whether a document whose index row holds ``manifest_json`` is stored sealed."""
    if manifest_json is None:
        return False
    return json.loads(manifest_json).get("encryption") is not None


def plaintext_size(manifest: Manifest) -> int:
    """The size of the document as uploaded (the manifest's size is the sealed one)."""
    if manifest.encryption is None:
        return manifest.size
    return _params(manifest).plaintext_size


def _params(manifest: Manifest) -> SealParams:
    assert manifest.encryption is not None
    try:
        params = SealParams.from_json(manifest.encryption)
    except SealingError as e:
        raise _read_error(manifest.doc_id, e) from None
    if params.sealed_size != manifest.size:
        raise errors.StorageUnavailableError(
            f"document {manifest.doc_id} cannot be read: {manifest.size} sealed bytes stored, "
            f"its sealing parameters imply {params.sealed_size}; refused"
        )
    return params


# ----------------------------------------------------------------- master keys


def _key_file_error(path: Path, why: str) -> errors.NotaryError:
    return errors.NotaryError(f"invalid setting sealing.master_key_file: {path}: {why}")


def _read_key_file(path: Path) -> Keyring:
    try:
        mode = path.stat().st_mode
        if stat.S_IMODE(mode) & 0o077:
            raise _key_file_error(
                path,
                f"permissions {stat.S_IMODE(mode):04o} let others read it; "
                f"it must be 0600 (chmod 600 {path})",
            )
        text = path.read_text(encoding="ascii")
    except OSError as e:
        raise _key_file_error(path, e.strerror or str(e)) from None
    except UnicodeDecodeError:
        raise _key_file_error(path, "not an ASCII key file") from None
    try:
        return parse_keyring(text, str(path))
    except SealingError as e:
        raise errors.NotaryError(f"invalid setting sealing.master_key_file: {e}") from None


def _create_key_file(path: Path, random_bytes: RandomBytes) -> None:
    """Write a fresh master key to ``path`` with mode 0600 unless it exists already."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(
            "# Master keys sealing confidential documents (docs/sealing.md), oldest first;\n"
            "# the last one seals new documents. Losing this file loses every sealed\n"
            "# document: back it up apart from the data.\n"
        )
        f.write(format_master_key(random_bytes(KEY_SIZE)) + "\n")
        f.flush()
        os.fsync(f.fileno())
    log.info("created a master key for sealing in %s", path)


def load_keyring(settings: Settings, random_bytes: RandomBytes = os.urandom) -> Keyring | None:
    """The master keys the settings name, or None if sealing is not configured.

    Raises NotaryError with one line naming the setting (never a key) when the keys
    cannot be used: a key file readable by others, missing, or malformed.
    """
    conf = settings.sealing
    if conf.master_key is not None and conf.master_key_file is not None:
        raise errors.NotaryError(
            "invalid setting sealing: set master_key_file or master_key, not both"
        )
    if conf.master_key is not None:
        try:
            return parse_keyring(conf.master_key.get_secret_value(), "sealing.master_key")
        except SealingError as e:
            raise errors.NotaryError(f"invalid setting {e}") from None
    if conf.master_key_file is not None:
        return _read_key_file(conf.master_key_file)
    if settings.storage.nodes:
        log.warning(
            "sealing is not configured ([sealing] master_key_file or "
            "NOTARY_SEALING_MASTER_KEY): confidential uploads will be refused"
        )
        return None
    path = settings.data_dir / EMBEDDED_KEY_FILE
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _create_key_file(path, random_bytes)
    return _read_key_file(path)


# ---------------------------------------------------------------- put and read


def _read_error(doc_id: str, e: SealingError) -> errors.NotaryError:
    if e.reason in ("unknown_key", "unwrap_failed"):
        return errors.SealingKeyUnavailableError(
            f"document {doc_id} is sealed and cannot be opened: {e}", reason=e.reason
        )
    return errors.StorageUnavailableError(
        f"document {doc_id} cannot be read: {e}; refused", reason=e.reason, record=e.record
    )


class _PlainDigest:
    """SHA-256 and size of the plaintext passing through; checks an expected digest."""

    def __init__(self, expected: str | None) -> None:
        self.expected = expected
        self.size = 0
        self._hasher = hashlib.sha256()

    def hexdigest(self) -> str:
        return self._hasher.hexdigest()

    async def through(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            self.size += len(chunk)
            if len(chunk) >= _HASH_IN_THREAD:
                await run_cpu(self._hasher.update, chunk)
            else:
                self._hasher.update(chunk)
            yield chunk
        # Raised before the sealer sees the end of the stream, so the final record is
        # never written and storage removes what it stored.
        calculated = self.hexdigest()
        if self.expected is not None and self.expected != calculated:
            raise errors.DigestMismatchError(
                f"the uploaded bytes have SHA-256 {calculated}, not {self.expected}; "
                "nothing was stored",
                expected=self.expected,
                calculated=calculated,
            )


class Sealing:
    """The service's sealing: the keyring (None: not configured) and how to use it."""

    def __init__(
        self,
        keyring: Keyring | None,
        *,
        record_size: int = DEFAULT_RECORD_SIZE,
        random_bytes: RandomBytes = os.urandom,
    ) -> None:
        self.keyring = keyring
        self.record_size = record_size
        self._random = random_bytes

    def _keys(self, doc_id: str) -> Keyring:
        if self.keyring is None:
            raise errors.SealingKeyUnavailableError(
                f"document {doc_id} must be sealed (or opened), but no master key is "
                "configured: set [sealing] master_key_file or NOTARY_SEALING_MASTER_KEY"
            )
        return self.keyring

    async def put(
        self,
        store: DocumentStore,
        body: AsyncIterable[bytes],
        *,
        doc_id: str,
        expected_sha256: str | None,
        new_id: bool = False,
    ) -> tuple[Manifest, int, str]:
        """Seal ``body`` into ``store``: (manifest, plaintext size, plaintext SHA-256 hex).
        ``new_id``: as for ``DocumentStore.put`` (``doc_id`` was just drawn at random).

        DigestMismatchError (after storage removed everything) if ``expected_sha256``
        is not the plaintext's; SealingKeyUnavailableError if no key is configured.
        Storage errors propagate as from ``DocumentStore.put``.
        """
        sealer = RecordSealer.create(doc_id, self._keys(doc_id), self._random, self.record_size)
        digest = _PlainDigest(expected_sha256.lower() if expected_sha256 else None)

        def encryption() -> dict[str, Any]:
            return sealer.params.to_json()

        manifest = await store.put(
            seal_stream(digest.through(body), sealer, offload=run_cpu),
            doc_id=doc_id,
            encryption=encryption,
            new_id=new_id,
        )
        return manifest, digest.size, digest.hexdigest()

    def opener(self, manifest: Manifest) -> RecordOpener:
        """The record opener of a sealed document; NotaryError if it cannot be opened."""
        params = _params(manifest)
        try:
            return RecordOpener(manifest.doc_id, self._keys(manifest.doc_id), params)
        except SealingError as e:
            raise _read_error(manifest.doc_id, e) from None

    async def read(
        self, store: DocumentStore, manifest: Manifest, start: int, end: int
    ) -> AsyncIterator[bytes]:
        """Yield plaintext ``[start, end)`` of a document, sealed or not.

        For a sealed document only the records covering the range are fetched and each
        is authenticated before its bytes are yielded; a record that does not
        authenticate raises StorageUnavailableError (never yields wrong bytes), a
        missing master key SealingKeyUnavailableError. Storage errors propagate.
        """
        if manifest.encryption is None:
            async for chunk in store.read(manifest, start, end):
                yield chunk
            return
        opener = self.opener(manifest)

        def sealed(lo: int, hi: int) -> AsyncIterable[bytes]:
            return store.read(manifest, lo, hi)

        try:
            async for chunk in unseal_range(sealed, opener, start, end, offload=run_cpu):
                yield chunk
        except SealingError as e:
            raise _read_error(manifest.doc_id, e) from None
