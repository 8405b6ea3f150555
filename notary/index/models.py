"""SQLAlchemy 2 models of the index. Schema changes go through Alembic (notary/migrations)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Document(Base):
    """One stored document (one version; ``supersedes`` links the version chain)."""

    __tablename__ = "documents"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str | None] = mapped_column(Text)
    filename: Mapped[str | None] = mapped_column(Text)
    media_type: Mapped[str | None] = mapped_column(String(255))
    project: Mapped[str | None] = mapped_column(String(255), index=True)
    supersedes: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("documents.id"), unique=True
    )
    # The first document of the version chain (itself for a first version).
    chain_root: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    # storing -> anchoring -> anchored. While storing, the content fields below are null.
    status: Mapped[str] = mapped_column(String(16), index=True)
    salt: Mapped[bytes] = mapped_column(LargeBinary(32))
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    manifest: Mapped[str | None] = mapped_column(Text)
    entry: Mapped[bytes | None] = mapped_column(LargeBinary)
    entry_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    leaf_index: Mapped[int | None] = mapped_column(BigInteger)
    block_height: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    anchored_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CustodyEvent(Base):
    """One access to a document's content (chain of custody), itself anchored."""

    __tablename__ = "custody_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    document_id: Mapped[str] = mapped_column(String(64), ForeignKey("documents.id"), index=True)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(32))
    case_ref: Mapped[str | None] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    entry: Mapped[bytes] = mapped_column(LargeBinary)
    entry_hash: Mapped[str] = mapped_column(String(64), unique=True)
    leaf_index: Mapped[int | None] = mapped_column(BigInteger)


Index("ix_documents_status_created", Document.status, Document.created_at)
