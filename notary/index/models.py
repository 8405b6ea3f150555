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
    UniqueConstraint,
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
    """One access to a document's content (chain of custody), itself anchored.

    ``event`` holds the exact canonical event bytes the anchored ``entry`` commits to
    (under ``salt``); the other columns repeat its fields for queries. See docs/custody.md.
    """

    __tablename__ = "custody_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    document_id: Mapped[str] = mapped_column(String(64), ForeignKey("documents.id"), index=True)
    actor: Mapped[str] = mapped_column(String(255))
    actor_org: Mapped[str] = mapped_column(String(128))
    actor_role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    case_ref: Mapped[str | None] = mapped_column(String(255))
    range_start: Mapped[int] = mapped_column(BigInteger)
    range_end: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    event: Mapped[bytes] = mapped_column(LargeBinary)
    salt: Mapped[bytes] = mapped_column(LargeBinary(32))
    entry: Mapped[bytes] = mapped_column(LargeBinary)
    entry_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # anchoring -> anchored, as for documents.
    status: Mapped[str] = mapped_column(String(16), index=True)
    leaf_index: Mapped[int | None] = mapped_column(BigInteger)
    block_height: Mapped[int | None] = mapped_column(BigInteger)
    anchored_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ApiToken(Base):
    """A bearer token of the API; only its SHA-256 is stored, never the token."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    org: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Share(Base):
    """A version chain (by its first document) shared by its owner with another org."""

    __tablename__ = "shares"
    __table_args__ = (UniqueConstraint("chain_root", "org"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    chain_root: Mapped[str] = mapped_column(String(64), ForeignKey("documents.id"))
    org: Mapped[str] = mapped_column(String(128), index=True)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CaseOrder(Base):
    """A court's order, recorded by an admin, to read named documents under a case."""

    __tablename__ = "case_orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_ref: Mapped[str] = mapped_column(String(255), unique=True)
    court_org: Mapped[str] = mapped_column(String(128), index=True)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CaseOrderDocument(Base):
    """One document named by a case order."""

    __tablename__ = "case_order_documents"

    case_order_id: Mapped[int] = mapped_column(ForeignKey("case_orders.id"), primary_key=True)
    document_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("documents.id"), primary_key=True, index=True
    )


class LogStream(Base):
    """A broker's log stream: a hash chain of anchored segments (docs/log-streams.md)."""

    __tablename__ = "log_streams"
    __table_args__ = (UniqueConstraint("org", "name"),)

    # Opaque id (32 hex), the ``stream`` of every log_segment entry; never the name.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The head: last accepted segment (-1 and nulls while empty); ``head_end`` is the
    # stream byte offset where the next segment must start.
    head_seq: Mapped[int] = mapped_column(BigInteger)
    head_end: Mapped[int] = mapped_column(BigInteger)
    head_sha256: Mapped[str | None] = mapped_column(String(64))
    head_entry_hash: Mapped[str | None] = mapped_column(String(64))
    head_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LogSegment(Base):
    """One segment of a log stream, stored as a ``broker_log`` document."""

    __tablename__ = "log_segments"

    stream_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("log_streams.id"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    document_id: Mapped[str] = mapped_column(String(64), ForeignKey("documents.id"), unique=True)
    start_offset: Mapped[int] = mapped_column(BigInteger)
    end_offset: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))
    # When the client cut the segment (its clock): what --from/--to select on.
    cut_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


Index("ix_log_segments_stream_cut", LogSegment.stream_id, LogSegment.cut_at)
Index("ix_documents_status_created", Document.status, Document.created_at)
