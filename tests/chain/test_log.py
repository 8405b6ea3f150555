"""chain.log.MerkleLog: proofs against the naive reference, persistence, crash recovery."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain import merkle
from chain.errors import LogError
from chain.log import DB_FILE, NODES_FILE, MerkleLog, node_count, node_position

try:  # tests/chain is a rootdir-style directory today; also work if it becomes a package
    from naive_merkle import mth, path, proof
except ImportError:  # pragma: no cover
    from tests.chain.naive_merkle import mth, path, proof

REPO = Path(__file__).resolve().parents[2]
RNG = random.Random(20261121)


def entry(i: int) -> bytes:
    """Entry i of every test log: deterministic, so a reopened log can be checked."""
    return b"entry-%d-" % i + bytes([i % 251]) * (i % 7)


def entries(begin: int, end: int) -> list[bytes]:
    return [entry(i) for i in range(begin, end)]


def test_node_position_is_post_order() -> None:
    # Enumerate a post-order traversal the slow way: after leaf j, every subtree it completes.
    order: list[tuple[int, int]] = []
    for j in range(300):
        order.append((0, j))
        level, done = 1, j + 1
        while done % (1 << level) == 0:
            order.append((level, (done >> level) - 1))
            level += 1
    assert [node_position(lv, ix) for lv, ix in order] == list(range(len(order)))
    assert node_count(300) == sum(1 for lv, ix in order if (ix + 1) << lv <= 300)


def test_empty_log(tmp_path: Path) -> None:
    with MerkleLog.open(tmp_path / "log") as log:
        assert log.size == 0
        assert log.root() == merkle.empty_root() == log.root_at(0)
        assert log.compact_range() == merkle.CompactRange.empty()
        assert log.consistency_proof(0, 0) == []
        assert log.leaf_index(merkle.leaf_hash(b"x")) is None
        assert log.append([]) == (0, merkle.empty_root())
        with pytest.raises(LogError):
            log.entry(0)
        with pytest.raises(LogError):
            log.inclusion_proof(0, 0)


def test_appends_roots_and_every_proof_match_reference(tmp_path: Path) -> None:
    n = 45
    all_entries = entries(0, n)
    with MerkleLog.open(tmp_path / "log") as log:
        done = 0
        for k in [1, 2, 5, 0, 8, 13, 16]:
            size, root = log.append(all_entries[done : done + k])
            done += k
            assert (size, root) == (done, mth(all_entries[:done]))
            assert log.head() == (size, root)
            assert log.compact_range().root() == root
        assert done == n
        for size in range(n + 1):
            assert log.root_at(size) == mth(all_entries[:size])
            assert log.compact_range(size).root() == mth(all_entries[:size])
            for old in range(size + 1):
                assert log.consistency_proof(old, size) == proof(old, all_entries[:size])
            for i in range(size):
                assert log.inclusion_proof(i, size) == path(i, all_entries[:size])
        for i in range(n):
            assert log.entry(i) == all_entries[i]
            assert log.leaf_hash(i) == merkle.leaf_hash(all_entries[i])
            assert log.leaf_index(merkle.leaf_hash(all_entries[i])) == i


def test_out_of_range_requests_raise_log_error(tmp_path: Path) -> None:
    with MerkleLog.open(tmp_path / "log") as log:
        log.append(entries(0, 10))
        for call in [
            lambda: log.entry(10),
            lambda: log.entry(-1),
            lambda: log.leaf_hash(10),
            lambda: log.root_at(11),
            lambda: log.root_at(-1),
            lambda: log.compact_range(11),
            lambda: log.inclusion_proof(10, 10),
            lambda: log.inclusion_proof(3, 11),
            lambda: log.inclusion_proof(-1, 5),
            lambda: log.consistency_proof(5, 11),
            lambda: log.consistency_proof(6, 5),
            lambda: log.consistency_proof(-1, 5),
        ]:
            with pytest.raises(LogError):
                call()


def test_closed_log_raises_log_error(tmp_path: Path) -> None:
    log = MerkleLog.open(tmp_path / "log")
    log.append(entries(0, 3))
    log.close()
    log.close()
    with pytest.raises(LogError):
        log.append(entries(3, 4))
    with pytest.raises(LogError):
        log.inclusion_proof(0, 3)


def test_leaf_index_duplicates_unknown_and_malformed(tmp_path: Path) -> None:
    with MerkleLog.open(tmp_path / "log") as log:
        log.append([b"a", b"b", b"a", b"c"])
        assert log.leaf_index(merkle.leaf_hash(b"a")) == 0
        assert log.leaf_index(merkle.leaf_hash(b"c")) == 3
        assert log.leaf_index(merkle.leaf_hash(b"d")) is None
        assert log.leaf_index(b"short") is None
        # Same 8-byte index prefix, different hash: found in the index, rejected by the
        # full comparison against the nodes file.
        forged = merkle.leaf_hash(b"b")[:8] + bytes(24)
        assert log.leaf_index(forged) is None


def test_reopen_keeps_everything(tmp_path: Path) -> None:
    d = tmp_path / "log"
    with MerkleLog.open(d) as log:
        log.append(entries(0, 20))
        log.append(entries(20, 33))
        root = log.root()
    with MerkleLog.open(d) as log:
        assert (log.size, log.root()) == (33, root)
        assert log.root_at(20) == mth(entries(0, 20))
        assert log.inclusion_proof(7, 33) == path(7, entries(0, 33))
        # The reopened frontier is good enough to keep appending.
        assert log.append(entries(33, 40)) == (40, mth(entries(0, 40)))
        assert log.entry(35) == entry(35)


# --- crash recovery ---------------------------------------------------------------


@pytest.mark.parametrize(
    "tail",
    [b"\x00" * 17, RNG.randbytes(32), RNG.randbytes(32 * 9 + 5), b"\xff" * 64],
    ids=["partial-record", "one-record", "records-and-partial", "two-records"],
)
def test_garbage_tail_of_nodes_file_is_cut_on_open(tmp_path: Path, tail: bytes) -> None:
    d = tmp_path / "log"
    with MerkleLog.open(d) as log:
        log.append(entries(0, 21))
    committed = (d / NODES_FILE).stat().st_size
    with (d / NODES_FILE).open("ab") as f:  # what an append killed before its commit leaves
        f.write(tail)
    with MerkleLog.open(d) as log:
        assert (log.size, log.root()) == (21, mth(entries(0, 21)))
        assert (d / NODES_FILE).stat().st_size == committed
        assert log.append(entries(21, 30)) == (30, mth(entries(0, 30)))
        assert log.inclusion_proof(25, 30) == path(25, entries(0, 30))


def test_uncommitted_append_is_rolled_back(tmp_path: Path) -> None:
    # Reproduce the exact state of a crash between the nodes fsync and the commit:
    # the nodes of a whole append are on disk, the commit marker is not.
    d = tmp_path / "log"
    with MerkleLog.open(d) as log:
        log.append(entries(0, 12))
    nodes_before = (d / NODES_FILE).read_bytes()
    with MerkleLog.open(d) as log:
        log.append(entries(12, 19))
    full_nodes = (d / NODES_FILE).read_bytes()
    assert full_nodes.startswith(nodes_before)

    fresh = tmp_path / "fresh"
    with MerkleLog.open(fresh) as log:
        log.append(entries(0, 12))
    (fresh / NODES_FILE).write_bytes(full_nodes)
    with MerkleLog.open(fresh) as log:
        assert (log.size, log.root()) == (12, mth(entries(0, 12)))
        assert log.leaf_index(merkle.leaf_hash(entry(15))) is None
        assert log.append(entries(12, 19)) == (19, mth(entries(0, 19)))


def test_garbage_wal_is_ignored(tmp_path: Path) -> None:
    d = tmp_path / "log"
    with MerkleLog.open(d) as log:
        log.append(entries(0, 9))
    (d / (DB_FILE + "-wal")).write_bytes(RNG.randbytes(5000))
    with MerkleLog.open(d) as log:
        assert (log.size, log.root()) == (9, mth(entries(0, 9)))


CRASH_CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[2])
    sys.path.insert(0, sys.argv[3])
    from pathlib import Path
    from chain.log import MerkleLog
    from test_log import entries
    log = MerkleLog.open(Path(sys.argv[1]))
    size = log.size
    while True:
        k = 1 + (size * 7919) % 61
        size, _ = log.append(entries(size, size + k))
        print(size, flush=True)
    """
)


def test_killed_writer_recovers_to_a_committed_size(tmp_path: Path) -> None:
    # A real crash: SIGKILL a process that appends in a loop, at seeded random moments,
    # then check the reopened log is exactly some prefix it reported or the next one.
    d = tmp_path / "log"
    rng = random.Random(1234)
    committed = 0
    for _round in range(3):
        child = subprocess.Popen(
            [sys.executable, "-c", CRASH_CHILD, str(d), str(REPO), str(Path(__file__).parent)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        reported = []
        want_lines = rng.randint(3, 25)
        deadline = time.monotonic() + 60
        while len(reported) < want_lines and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            reported.append(int(line))
        assert reported, "the writer process printed nothing"
        child.send_signal(signal.SIGKILL)
        child.wait()
        with MerkleLog.open(d) as log:
            # Everything reported is durable; at most the append in flight is lost or kept.
            assert log.size >= reported[-1] >= committed
            assert log.root() == merkle.root_hash(
                [merkle.leaf_hash(e) for e in entries(0, log.size)]
            )
            if log.size:
                i = log.size // 2
                merkle.verify_inclusion(
                    i,
                    log.size,
                    merkle.leaf_hash(entry(i)),
                    log.inclusion_proof(i, log.size),
                    log.root(),
                )
            committed = log.size


# --- corruption that a crash cannot cause ---------------------------------------


def test_flipped_frontier_node_is_detected(tmp_path: Path) -> None:
    d = tmp_path / "log"
    with MerkleLog.open(d) as log:
        log.append(entries(0, 13))
    # Size 13 = 8 + 4 + 1: the last record is leaf 12, a frontier node.
    data = bytearray((d / NODES_FILE).read_bytes())
    data[-1] ^= 0x01
    (d / NODES_FILE).write_bytes(bytes(data))
    with pytest.raises(LogError, match="corrupt"):
        MerkleLog.open(d)


def test_truncated_nodes_file_is_detected(tmp_path: Path) -> None:
    d = tmp_path / "log"
    with MerkleLog.open(d) as log:
        log.append(entries(0, 13))
    with (d / NODES_FILE).open("r+b") as f:
        f.truncate(32 * 5)
    with pytest.raises(LogError, match="truncated"):
        MerkleLog.open(d)


def test_missing_database_is_detected(tmp_path: Path) -> None:
    d = tmp_path / "log"
    with MerkleLog.open(d) as log:
        log.append(entries(0, 4))
    (d / DB_FILE).unlink()
    with pytest.raises(LogError, match="deleted"):
        MerkleLog.open(d)


# --- hypothesis: random append schedules and queries against the reference -------


@settings(derandomize=True, max_examples=12, deadline=None)
@given(chunks=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=5))
def test_random_append_schedules(chunks: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp, MerkleLog.open(Path(tmp)) as log:
        done = 0
        for k in chunks:
            assert log.append(entries(done, done + k)) == (done + k, mth(entries(0, done + k)))
            done += k
        assert log.compact_range() == merkle.CompactRange.empty().append(
            [merkle.leaf_hash(e) for e in entries(0, done)]
        )


BIG = 300


@pytest.fixture(scope="module")
def big_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MerkleLog]:
    with MerkleLog.open(tmp_path_factory.mktemp("big") / "log") as log:
        log.append(entries(0, 100))
        log.append(entries(100, BIG))
        yield log


@settings(derandomize=True, max_examples=80, deadline=None)
@given(data=st.data())
def test_random_proofs_of_a_larger_log(big_log: MerkleLog, data: st.DataObject) -> None:
    size = data.draw(st.integers(min_value=1, max_value=BIG))
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    old = data.draw(st.integers(min_value=0, max_value=size))
    prefix = entries(0, size)
    assert big_log.inclusion_proof(index, size) == path(index, prefix)
    assert big_log.consistency_proof(old, size) == proof(old, prefix)
    assert big_log.root_at(size) == mth(prefix)
