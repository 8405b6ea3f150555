"""BFT consensus of the ledger: two-chain HotStuff (Jolteon / DiemBFT v4).

One replica is a :class:`~chain.consensus.core.Core` wired to an injected transport,
clock, safety store, block store and ledger; ``docs/consensus.md`` describes the protocol,
its message formats and its safety and liveness arguments.
"""

from chain.consensus.blocks import GENESIS, GENESIS_QC, Block, Limits, QuorumCert, TimeoutCert
from chain.consensus.codec import decode_message, encode_message
from chain.consensus.committee import Committee
from chain.consensus.core import Core, CoreConfig
from chain.consensus.ledger import Ledger, MemoryLedger
from chain.consensus.mempool import Mempool, MempoolConfig
from chain.consensus.messages import (
    BlockRequest,
    BlockResponse,
    CheckpointVote,
    Message,
    Proposal,
    Timeout,
    Vote,
)
from chain.consensus.pacemaker import PacemakerConfig
from chain.consensus.safety import Rules, SafetyRules, SafetyState, SafetyStore
from chain.consensus.sqlite_store import SqliteStore
from chain.consensus.store import BlockStore, MemoryStore
from chain.consensus.transport import Clock, InMemoryNetwork, Timer, Transport

__all__ = [
    "GENESIS",
    "GENESIS_QC",
    "Block",
    "BlockRequest",
    "BlockResponse",
    "BlockStore",
    "CheckpointVote",
    "Clock",
    "Committee",
    "Core",
    "CoreConfig",
    "InMemoryNetwork",
    "Ledger",
    "Limits",
    "MemoryLedger",
    "MemoryStore",
    "Mempool",
    "MempoolConfig",
    "Message",
    "PacemakerConfig",
    "Proposal",
    "QuorumCert",
    "Rules",
    "SafetyRules",
    "SafetyState",
    "SafetyStore",
    "SqliteStore",
    "Timeout",
    "TimeoutCert",
    "Timer",
    "Transport",
    "Vote",
    "decode_message",
    "encode_message",
]
