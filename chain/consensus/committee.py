"""The committee: who the validators are, the quorum, who leads which view.

Validators are referred to by their index in the trust file; the leader of a view is
chosen by an injectable election (round robin by default). Signature verification is
injected too; the default is :func:`chain.keys.cached_verify_signature`, which remembers
successful verifications process-wide, so validators sharing a process (the embedded
default) verify each signature once, and a bad signature is rejected every time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chain.keys import cached_verify_signature
from chain.trust import TrustFile

SignatureVerifier = Callable[[bytes, bytes, bytes], bool]
"""``verify(public_key, message, signature) -> bool``; never raises."""

LeaderElection = Callable[[int, int], int]
"""``leader(view, n) -> validator index``."""


def round_robin(view: int, n: int) -> int:
    """The leader of ``view`` among ``n`` validators: ``view mod n``."""
    return view % n


@dataclass(frozen=True)
class Member:
    """One validator of the committee."""

    index: int
    name: str
    public_key: bytes


class Committee:
    """The validator set of one chain, with its quorum and leader election."""

    def __init__(
        self,
        trust: TrustFile,
        *,
        verifier: SignatureVerifier = cached_verify_signature,
        election: LeaderElection = round_robin,
    ) -> None:
        """Build from a trust file (already validated: n = 3f+1, threshold >= 2f+1)."""
        self.trust = trust
        self.chain_id: str = trust.chain_id
        self.members: tuple[Member, ...] = tuple(
            Member(i, v.name, bytes(v.public_key)) for i, v in enumerate(trust.validators)
        )
        self.size = len(self.members)
        self.f = (self.size - 1) // 3
        self.quorum: int = max(trust.threshold, 2 * self.f + 1)
        self._by_name = {m.name: m.index for m in self.members}
        self._verifier = verifier
        self._election = election

    def leader(self, view: int) -> int:
        """The index of the leader of ``view``."""
        return self._election(view, self.size)

    def index_of(self, name: str) -> int | None:
        """The index of the validator named ``name``, or None if it is not one."""
        return self._by_name.get(name)

    def name(self, index: int) -> str:
        """The name of validator ``index`` (precondition: ``is_member(index)``)."""
        return self.members[index].name

    def names(self) -> Sequence[str]:
        """The names of all validators, by index."""
        return [m.name for m in self.members]

    def is_member(self, index: int) -> bool:
        """Whether ``index`` names a validator."""
        return 0 <= index < self.size

    @property
    def verifier(self) -> SignatureVerifier:
        """The injected ``verify(public_key, message, signature)``."""
        return self._verifier

    def verify(self, index: int, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` over ``message`` is by validator ``index``; never raises."""
        if not self.is_member(index):
            return False
        return self._verifier(self.members[index].public_key, message, signature)
