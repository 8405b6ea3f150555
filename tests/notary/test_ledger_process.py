"""The embedded validators in their child process: calls, errors, and deaths on either
side, each injected for real (SIGKILL, a key file that does not match)."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from chain.errors import ChainError, QuorumNotMetError
from chain.keys import Signer
from chain.merkle import leaf_hash
from chain.node.results import NotFoundError
from notary.ledger_process import ChainProcessError, Covered, ProcessChain, _loads, _portable


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited


async def _gone(pid: int, timeout: float = 20.0) -> None:
    """Wait until process ``pid`` has exited."""
    async with asyncio.timeout(timeout):
        while True:
            if not _running(pid):
                return
            await asyncio.sleep(0.05)


async def test_a_batch_is_committed_signed_and_proved_in_one_call(tmp_path: Path) -> None:
    chain = await ProcessChain.start(tmp_path, n=4, chain_id="test.child")
    try:
        assert chain.trust.chain_id == "test.child" and len(chain.trust.validators) == 4
        entries = [b"entry %d" % i + bytes(32) for i in range(5)]
        await chain.submit(entries)
        hashes = [leaf_hash(e) for e in entries]
        outcomes = await chain.wait_signed(hashes, 20, [True, False, True, False, True])
        assert all(isinstance(o, Covered) for o in outcomes)
        assert [o.proof is not None for o in outcomes] == [True, False, True, False, True]  # type: ignore[union-attr]
        note = await chain.checkpoint_covering(outcomes[0].info.tree_size)  # type: ignore[union-attr]
        assert outcomes[0].checkpoint == note  # type: ignore[union-attr]
        # The child's own exception types reach the caller.
        with pytest.raises(NotFoundError):
            await chain.checkpoint(10_000)
    finally:
        await chain.close()
    assert chain.pid is None


def test_an_error_that_cannot_cross_becomes_a_chain_error_saying_what_it_was() -> None:
    crossing = _portable(NotFoundError("no such size"))
    assert type(crossing) is NotFoundError
    stuck = _portable(QuorumNotMetError("2 of 3", valid=2, needed=3, signers=("a", "b")))
    assert type(stuck) is ChainError and "QuorumNotMetError: 2 of 3" in str(stuck)
    with pytest.raises(pickle.UnpicklingError):  # nothing but results and errors
        _loads(pickle.dumps(subprocess.Popen))


async def test_a_killed_child_fails_the_calls_in_flight_and_the_next_call_restarts_it(
    tmp_path: Path,
) -> None:
    chain = await ProcessChain.start(tmp_path)
    try:
        first = await chain.submit([b"before the crash" + bytes(32)])
        info = await chain.wait_committed(first.entry_hashes[0], 20)
        waiting = asyncio.ensure_future(chain.wait_committed(b"\x01" * 32, 60))
        await asyncio.sleep(0)  # the call is on its way
        pid = chain.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(ChainProcessError):
            await waiting
        # A new child, recovered from disk: the earlier commit is still there.
        status = await chain.status()
        assert chain.pid not in (None, pid)
        assert status["tree_size"] >= info.tree_size
        later = await chain.submit([b"after the crash" + bytes(32)])
        again = await chain.wait_committed(later.entry_hashes[0], 20)
        assert again.leaf_index > info.leaf_index
    finally:
        await chain.close()


async def test_a_start_that_fails_says_why_in_one_error(tmp_path: Path) -> None:
    chain = await ProcessChain.start(tmp_path)
    await chain.close()
    Signer.generate("embedded-v1").save(tmp_path / "keys" / "embedded-v1.key", overwrite=True)
    with pytest.raises(ChainError, match="does not match trust file"):
        await ProcessChain.start(tmp_path)


async def test_the_child_exits_when_the_service_dies(tmp_path: Path) -> None:
    script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from notary.ledger_process import ProcessChain\n"
        "async def main():\n"
        "    chain = await ProcessChain.start(Path(sys.argv[1]))\n"
        "    print(chain.pid, flush=True)\n"
        "    await asyncio.Event().wait()\n"
        "asyncio.run(main())\n"
    )
    service = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, str(tmp_path), stdout=asyncio.subprocess.PIPE
    )
    assert service.stdout is not None
    try:
        child = int(await asyncio.wait_for(service.stdout.readline(), 30))
    finally:
        service.kill()  # SIGKILL: no chance to close the child in order
        await service.wait()
    await _gone(child)
