"""Who may do what with a document: roles, and the rights they give over one document.

Roles (DESIGN.md "Roles")::

    admin      everything, for every organisation
    submitter  uploads for its organisation; reads, shares and supersedes its documents
    reviewer   reads what another organisation shared with its organisation
    court      reads documents named by a case order addressed to it, content only
               under that case (``?case=REF``), which the custody log records
    auditor    reads metadata and custody logs of every document, never content

A document one may not see at all is "not found" (never "forbidden"), so document ids
do not reveal that a document exists. "Forbidden" is only for a caller who sees the
document but may not do the thing asked (an auditor asking for content).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from notary.index.models import CaseOrder, CaseOrderDocument, Document, Share

ORG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")
CASE_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._/:#-]{0,127}")


class Role(enum.StrEnum):
    ADMIN = "admin"
    SUBMITTER = "submitter"
    REVIEWER = "reviewer"
    COURT = "court"
    AUDITOR = "auditor"


@dataclass(frozen=True)
class Principal:
    """Who is asking: an organisation and a role (admin, submitter, reviewer, court, auditor)."""

    org: str
    role: str
    name: str


@dataclass(frozen=True)
class Rights:
    """What one principal may do with one document."""

    metadata: bool = False  # metadata, status, versions, receipt
    content: bool = False  # content without a case reference
    custody: bool = False  # the custody log
    owner: bool = False  # share the version chain, upload a new version
    cases: frozenset[str] = frozenset()  # case orders (to this court) naming the document

    def may_read_content(self, case_ref: str | None) -> bool:
        """Whether content may be read, given the case reference the caller named."""
        return self.content or (case_ref is not None and case_ref in self.cases)


NONE = Rights()
ALL = Rights(metadata=True, content=True, custody=True, owner=True)


async def rights(s: AsyncSession, who: Principal, row: Document) -> Rights:
    """The rights ``who`` has over the document ``row`` (queries shares and case orders)."""
    role = who.role
    if role == Role.ADMIN:
        return ALL
    if role == Role.AUDITOR:
        return Rights(metadata=True, custody=True)
    if role == Role.COURT:
        cases = frozenset(
            (
                await s.execute(
                    select(CaseOrder.case_ref)
                    .join(CaseOrderDocument, CaseOrderDocument.case_order_id == CaseOrder.id)
                    .where(CaseOrderDocument.document_id == row.id, CaseOrder.court_org == who.org)
                )
            ).scalars()
        )
        return Rights(metadata=bool(cases), custody=bool(cases), cases=cases)
    if role not in (Role.SUBMITTER, Role.REVIEWER):
        return NONE
    if row.org == who.org:
        return Rights(metadata=True, content=True, custody=True, owner=role == Role.SUBMITTER)
    shared = await s.scalar(
        select(Share.id).where(Share.chain_root == row.chain_root, Share.org == who.org)
    )
    return Rights(metadata=True, content=True) if shared is not None else NONE


def may_upload(who: Principal) -> bool:
    """Submitters upload for their organisation; admins for theirs."""
    return who.role in (Role.ADMIN, Role.SUBMITTER)
