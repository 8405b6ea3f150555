"""The embedded validators in a child process of the service.

The embedded default runs its four validators on the service's machine. In the
service's own process they would share its interpreter lock: every consensus step (a
message handled, an fsync returned) waits for the API's event loop to let go of it, and
under load a commit that takes ~15 ms alone takes ~80 ms. In a child process they have
a core's worth of interpreter of their own, and the service pays one round trip over a
Unix socket per call (a batch of entries is one call to submit and one to wait for).

:class:`ProcessChain` starts ``python -m notary.ledger_process`` with one end of a
socket pair, and offers the ledger operations the service uses (``LedgerClientProtocol``
plus :meth:`~ProcessChain.wait_signed` and :meth:`~ProcessChain.latest_with_proof`),
each sent to the child and answered there by :func:`chain.node.inprocess.start_embedded`'s
validators. Cancelling a call cancels it in the child.

Wire: frames of a 4-byte big-endian length and a pickle (the two ends are the same
program, parent and child, over a socket pair nobody else holds). Parent to child:
``(call_id, method, args)``, ``(call_id, CANCEL, ())``. Child to parent: ``(0, READY,
trust_path)`` or ``(0, FAILED, message)`` once, then ``(call_id, ok, value)`` (the result,
or the exception raised).

Lifetime: the child runs in a session of its own (a Ctrl-C in the terminal reaches the
service, which closes the child in order), and exits when its socket closes (the service
ended, however it ended). If the child dies, calls in flight fail with
:class:`ChainProcessError` (a :class:`~chain.errors.ChainError`: the service answers 503
and the anchorer retries), and the next call starts a new child, which recovers the
validators from disk.
"""

from __future__ import annotations

import argparse
import asyncio
import builtins
import contextlib
import io
import itertools
import logging
import pickle
import signal
import socket
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chain.checkpoint import parse_checkpoint
from chain.errors import ChainError
from chain.node.eventloop import run as run_loop
from chain.node.inprocess import EmbeddedChain, start_embedded
from chain.node.results import CommitInfo, ConsistencyProof, InclusionProof, SubmitResult
from chain.note import parse_note
from chain.trust import TrustFile

log = logging.getLogger(__name__)

_LENGTH = struct.Struct(">I")
READY, FAILED, CANCEL, CLOSE = "ready", "failed", "cancel", "close"
START_TIMEOUT = 60.0  # s for the child to open the validators (recovery included)
RESTART_DELAY = 1.0  # s between a child's death and the start of the next one


class ChainProcessError(ChainError):
    """The validators' process is not running (it died, or could not start)."""


@dataclass(frozen=True)
class Covered:
    """An entry committed and covered by a signed checkpoint: where it landed and, if it
    was asked for, the first checkpoint covering it with the entry's inclusion proof in
    that checkpoint's tree (all a receipt needs)."""

    info: CommitInfo
    checkpoint: str | None = None
    tree_size: int | None = None
    proof: tuple[bytes, ...] | None = None


# ------------------------------------------------------------------------------- frames


_BUILTIN_ERRORS = frozenset(
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
)


class _Unpickler(pickle.Unpickler):
    """Rebuilds only what the two ends exchange: the chain's results and errors, this
    module's, and built-in exceptions (defence in depth: nobody else holds the socket)."""

    def find_class(self, module: str, name: str) -> Any:
        if (
            module.startswith("chain.")
            or module == __name__
            or (module == "builtins" and name in _BUILTIN_ERRORS)
        ):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} may not cross to the validators")


def _loads(data: bytes) -> Any:
    return _Unpickler(io.BytesIO(data)).load()


async def _read_frame(reader: asyncio.StreamReader) -> Any:
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    return _loads(await reader.readexactly(length))


def _frame(message: Any) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


def _portable(error: BaseException) -> BaseException:
    """``error`` if it survives a pickle round trip, else a ChainError saying what it was
    (exceptions with keyword-only arguments do not)."""
    try:
        _loads(pickle.dumps(error))
    except Exception:
        return ChainError(f"{type(error).__name__}: {error}")
    return error


# ------------------------------------------------------------------------------- parent


class ProcessChain:
    """The embedded validators in a child process; use :meth:`start`."""

    def __init__(self, data_dir: Path, n: int, chain_id: str) -> None:
        """Use :meth:`start`."""
        self._data_dir = data_dir
        self._args = [
            sys.executable, "-m", __name__,
            "--data-dir", str(data_dir), "--validators", str(n), "--chain-id", chain_id,
        ]  # fmt: skip
        self._trust: TrustFile | None = None
        self._trust_path: Path | None = None
        self._ids = itertools.count(1)
        self._calls: dict[int, asyncio.Future[Any]] = {}
        self._process: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._starting: asyncio.Task[None] | None = None
        self._died_at = 0.0
        self._closed = False

    @classmethod
    async def start(
        cls, data_dir: Path, *, n: int = 4, chain_id: str = "notary.embedded"
    ) -> ProcessChain:
        """Start the child and wait until its validators are open (ChainError with the
        child's reason if they cannot be: say, a key that does not match the trust file)."""
        self = cls(Path(data_dir), n, chain_id)
        await self._spawn()
        return self

    @property
    def trust(self) -> TrustFile:
        """The validator set."""
        assert self._trust is not None
        return self._trust

    @property
    def trust_path(self) -> Path:
        """Where the trust file is (what verifiers need)."""
        assert self._trust_path is not None
        return self._trust_path

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return self._process.pid if self._process is not None else None

    async def _spawn(self) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            process = await asyncio.create_subprocess_exec(
                *self._args, "--fd", str(child.fileno()),
                pass_fds=(child.fileno(),), stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        reader, writer = await asyncio.open_unix_connection(sock=parent)
        try:
            async with asyncio.timeout(START_TIMEOUT):
                _, kind, value = await _read_frame(reader)
        except (asyncio.IncompleteReadError, TimeoutError):
            writer.close()
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            code = await process.wait()
            raise ChainProcessError(
                f"the embedded validators' process did not start (exit code {code})"
            ) from None
        if kind != READY:
            writer.close()
            await process.wait()
            raise ChainError(value)
        if self._trust is None:
            self._trust_path = Path(value)
            self._trust = TrustFile.load(self._trust_path)
        self._process, self._writer = process, writer
        self._reader_task = asyncio.create_task(self._read_answers(reader, process))

    async def _read_answers(
        self, reader: asyncio.StreamReader, process: asyncio.subprocess.Process
    ) -> None:
        try:
            while True:
                call_id, ok, value = await _read_frame(reader)
                fut = self._calls.pop(call_id, None)
                if fut is None or fut.done():
                    continue
                if ok:
                    fut.set_result(value)
                else:
                    fut.set_exception(value)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception as e:  # a frame that cannot be read: the channel is unusable
            log.error("bad answer from the embedded validators' process: %r", e)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        code = await process.wait()
        self._process = self._writer = None
        self._died_at = asyncio.get_running_loop().time()
        if not self._closed:
            log.error("the embedded validators' process exited (code %s); restarting it", code)
        error = ChainProcessError(f"the embedded validators' process exited (code {code})")
        calls, self._calls = self._calls, {}
        for fut in calls.values():
            if not fut.done():
                fut.set_exception(error)

    async def _running(self) -> asyncio.StreamWriter:
        """The child's socket, starting a new child if the last one died."""
        if self._closed:
            raise ChainProcessError("the embedded chain is closed")
        if self._writer is not None:
            return self._writer
        if self._starting is None or self._starting.done():
            self._starting = asyncio.create_task(self._restart())
        await asyncio.shield(self._starting)
        assert self._writer is not None
        return self._writer

    async def _restart(self) -> None:
        wait = self._died_at + RESTART_DELAY - asyncio.get_running_loop().time()
        if wait > 0:
            await asyncio.sleep(wait)
        await self._spawn()

    async def _call(self, method: str, *args: Any) -> Any:
        writer = await self._running()
        call_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls[call_id] = fut
        writer.write(_frame((call_id, method, args)))
        try:
            return await fut
        except asyncio.CancelledError:
            if self._calls.pop(call_id, None) is not None and self._writer is writer:
                writer.write(_frame((call_id, CANCEL, ())))
            raise

    async def submit(self, entries: Sequence[bytes]) -> SubmitResult:
        """Admit a batch of entries to the validators' mempool."""
        return await self._call("submit", list(entries))  # type: ignore[no-any-return]

    async def wait_committed(self, entry_hash: bytes, timeout: float = 30.0) -> CommitInfo:
        """Wait until the entry is committed; raises CommitTimeoutError."""
        return await self._call("wait_committed", entry_hash, timeout)  # type: ignore[no-any-return]

    async def latest_checkpoint(self) -> str | None:
        """The largest committed checkpoint note, or None before the first one."""
        return await self._call("latest_checkpoint")  # type: ignore[no-any-return]

    async def latest_with_proof(self, leaf_index: int) -> tuple[str | None, InclusionProof | None]:
        """The latest checkpoint note and, if its tree holds leaf ``leaf_index``, the
        leaf's inclusion proof in that tree; one round trip."""
        return await self._call("latest_with_proof", leaf_index)  # type: ignore[no-any-return]

    async def wait_signed(
        self,
        entry_hashes: Sequence[bytes],
        timeout: float,
        prove: Sequence[bool],
        submit: Sequence[bytes] = (),
    ) -> list[Covered | BaseException]:
        """For each entry, once it is committed and a checkpoint covering it is signed
        (of its tree size or larger): where it landed, with that checkpoint and the
        entry's inclusion proof where ``prove`` says so; or the error (e.g.
        CommitTimeoutError). One round trip for the whole batch, which first submits the
        entries ``submit`` holds, if any (the whole call fails if that submission does)."""
        return await self._call(  # type: ignore[no-any-return]
            "wait_signed", list(entry_hashes), timeout, list(prove), list(submit)
        )

    async def checkpoint(self, tree_size: int, timeout: float = 0.0) -> str:
        """The committed checkpoint of exactly ``tree_size`` (waiting up to ``timeout``)."""
        return await self._call("checkpoint", tree_size, timeout)  # type: ignore[no-any-return]

    async def checkpoint_covering(self, tree_size: int, timeout: float = 0.0) -> str:
        """The smallest committed checkpoint of size >= ``tree_size``."""
        return await self._call("checkpoint_covering", tree_size, timeout)  # type: ignore[no-any-return]

    async def inclusion_proof(
        self, tree_size: int, *, leaf_index: int | None = None, entry_hash: bytes | None = None
    ) -> InclusionProof:
        """Inclusion proof by leaf index or entry hash in the tree of ``tree_size``."""
        return await self._call("inclusion_proof", tree_size, leaf_index, entry_hash)  # type: ignore[no-any-return]

    async def consistency_proof(self, old_size: int, new_size: int) -> ConsistencyProof:
        """Consistency proof between two tree sizes."""
        return await self._call("consistency_proof", old_size, new_size)  # type: ignore[no-any-return]

    async def block(self, height: int) -> dict[str, Any]:
        """The committed block at ``height`` as JSON."""
        return await self._call("block", height)  # type: ignore[no-any-return]

    async def status(self) -> dict[str, Any]:
        """Height, view, tree size and latest checkpoint."""
        return await self._call("status")  # type: ignore[no-any-return]

    async def close(self) -> None:
        """Stop the validators (they close their stores) and wait for the child to exit
        (idempotent)."""
        if self._closed:
            return
        if self._starting is not None and not self._starting.done():
            with contextlib.suppress(Exception):
                await self._starting
        with contextlib.suppress(ChainError):
            await self._call(CLOSE)
        self._closed = True
        process, writer = self._process, self._writer
        if writer is not None:
            writer.close()
        if process is not None:
            try:
                async with asyncio.timeout(10):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._reader_task is not None:
            await self._reader_task


# -------------------------------------------------------------------------------- child


class _Operations:
    """What the parent may call, on the validators of this process."""

    def __init__(self, chain: EmbeddedChain) -> None:
        self.chain = chain

    async def submit(self, entries: list[bytes]) -> SubmitResult:
        return await self.chain.submit(entries)

    async def wait_committed(self, entry_hash: bytes, timeout: float) -> CommitInfo:
        return await self.chain.wait_committed(entry_hash, timeout)

    async def latest_checkpoint(self) -> str | None:
        return await self.chain.latest_checkpoint()

    async def checkpoint(self, tree_size: int, timeout: float) -> str:
        return await self.chain.checkpoint(tree_size, timeout)

    async def checkpoint_covering(self, tree_size: int, timeout: float) -> str:
        return await self.chain.checkpoint_covering(tree_size, timeout)

    async def inclusion_proof(
        self, tree_size: int, leaf_index: int | None, entry_hash: bytes | None
    ) -> InclusionProof:
        return await self.chain.inclusion_proof(
            tree_size, leaf_index=leaf_index, entry_hash=entry_hash
        )

    async def consistency_proof(self, old_size: int, new_size: int) -> ConsistencyProof:
        return await self.chain.consistency_proof(old_size, new_size)

    async def block(self, height: int) -> dict[str, Any]:
        return await self.chain.block(height)

    async def status(self) -> dict[str, Any]:
        return await self.chain.status()

    async def latest_with_proof(self, leaf_index: int) -> tuple[str | None, InclusionProof | None]:
        note = await self.chain.latest_checkpoint()
        if note is None:
            return None, None
        size = parse_checkpoint(parse_note(note).text).size
        if leaf_index >= size:
            return note, None
        return note, await self.chain.inclusion_proof(size, leaf_index=leaf_index)

    async def wait_signed(
        self, entry_hashes: list[bytes], timeout: float, prove: list[bool], submit: list[bytes]
    ) -> list[Covered | BaseException]:
        chain = self.chain
        if submit:
            await chain.submit(submit)
        sizes: dict[str, int] = {}  # note -> its tree size (the entries of a block share one)

        async def one(entry_hash: bytes, want_proof: bool) -> Covered:
            info = await chain.wait_committed(entry_hash, timeout)
            note = await chain.checkpoint_covering(info.tree_size, timeout)
            if not want_proof:
                return Covered(info)
            size = sizes.get(note)
            if size is None:
                size = sizes[note] = parse_checkpoint(parse_note(note).text).size
            proof = await chain.inclusion_proof(size, leaf_index=info.leaf_index)
            return Covered(info, note, size, tuple(proof.hashes))

        outcomes = await asyncio.gather(
            *(one(h, w) for h, w in zip(entry_hashes, prove, strict=True)),
            return_exceptions=True,
        )
        return [o if isinstance(o, Covered) else _portable(o) for o in outcomes]


async def _serve(sock: socket.socket, data_dir: Path, n: int, chain_id: str) -> None:
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    try:
        chain = await start_embedded(data_dir, n=n, chain_id=chain_id)
    except Exception as e:
        writer.write(_frame((0, FAILED, str(e) if isinstance(e, ChainError) else repr(e))))
        await writer.drain()
        writer.close()
        return
    ops = _Operations(chain)
    tasks: dict[int, asyncio.Task[None]] = {}

    async def run(call_id: int, method: str, args: tuple[Any, ...]) -> None:
        try:
            result = await getattr(ops, method)(*args)
        except asyncio.CancelledError:
            return
        except Exception as e:
            writer.write(_frame((call_id, False, _portable(e))))
        else:
            writer.write(_frame((call_id, True, result)))
        finally:
            tasks.pop(call_id, None)

    writer.write(_frame((0, READY, str(chain.trust_path))))
    try:
        while True:
            try:
                call_id, method, args = await _read_frame(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return  # the service is gone
            if method == CANCEL:
                task = tasks.get(call_id)
                if task is not None:
                    task.cancel()
            elif method == CLOSE:
                await _close(chain, tasks)
                writer.write(_frame((call_id, True, None)))
                await writer.drain()
                return
            else:
                tasks[call_id] = asyncio.create_task(run(call_id, method, args))
    finally:
        await _close(chain, tasks)
        writer.close()


async def _close(chain: EmbeddedChain, tasks: dict[int, asyncio.Task[None]]) -> None:
    for task in list(tasks.values()):
        task.cancel()
    await asyncio.gather(*tasks.values(), return_exceptions=True)
    await chain.close()


def main(argv: Sequence[str] | None = None) -> None:
    """The child's entry point (started by :class:`ProcessChain`, not by hand)."""
    parser = argparse.ArgumentParser(description="embedded validators (a notary child)")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--validators", type=int, required=True)
    parser.add_argument("--chain-id", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="validators: %(levelname)s %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the service decides when we stop
    sock = socket.socket(fileno=args.fd)
    run_loop(_serve(sock, args.data_dir, args.validators, args.chain_id))


if __name__ == "__main__":
    # Through the module's own name, so that what the child pickles (Covered, say) is
    # found by the parent under that name, not as __main__.Covered.
    from notary.ledger_process import main as child_main

    child_main()


if TYPE_CHECKING:  # the service takes it for a ledger
    from chain.node.client import LedgerClientProtocol

    _check: LedgerClientProtocol = ProcessChain(Path(), 4, "")
