"""The ingest ops API (``aifinops.ingest.v1.IngestOps``): imports, counts and dead letters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import grpc
from sqlalchemy import and_, func, or_, select

from services.ingest.dead_letters import DEAD_LETTERS, DeadLetterStore
from services.ingest.tables import IngestImport, IngestRejectedRow, IngestUsageEvent
from shared.db import Database
from shared.grpc_api import (
    Conflict,
    InvalidArgument,
    authorised_tenant,
    decode_page_token,
    encode_page_token,
    handle_errors,
    page_size,
    required,
)
from shared.ops import ServiceRegistration, current_client
from shared.outbox import count_unsent
from shared.protos.ingest.v1 import ingest_pb2, ingest_pb2_grpc

IMPORTS = IngestImport.__table__  # type: ignore[attr-defined]
EVENTS = IngestUsageEvent.__table__  # type: ignore[attr-defined]
REJECTED = IngestRejectedRow.__table__  # type: ignore[attr-defined]
# A dead letter may be named by the first MIN_ID_PREFIX or more characters of its id, as `dlq list` prints them.
MIN_ID_PREFIX = 6
AMBIGUOUS_SHOWN = 5


def _instant(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def _import_message(row: Any) -> ingest_pb2.Import:
    return ingest_pb2.Import(
        import_id=row.import_id, tenant=row.tenant, channel=row.channel, file_name=row.file_name or "",
        format=row.source_format, status=row.status, started_at=_instant(row.started_at),
        finished_at=_instant(row.finished_at), rows_read=row.rows_read, accepted=row.accepted,
        duplicates=row.duplicates, rejected=row.rejected, empty=row.empty,
    )  # fmt: skip


def _dead_letter_message(row: Any) -> ingest_pb2.DeadLetter:
    return ingest_pb2.DeadLetter(
        id=row.dead_letter_id, consumer=row.consumer, tenant=row.tenant, original_topic=row.original_topic or "",
        original_partition=row.original_partition if row.original_partition is not None else -1,
        original_offset=row.original_offset if row.original_offset is not None else -1, reason=row.reason,
        field_path=row.field_path or "", attempts=row.attempts, failed_at=_instant(row.failed_at),
        original_bytes=row.original_bytes, replayed_at=_instant(row.replayed_at),
    )  # fmt: skip


class IngestOps(ingest_pb2_grpc.IngestOpsServicer):
    def __init__(self, database: Database, dead_letters: DeadLetterStore) -> None:
        self.database = database
        self.dead_letters = dead_letters

    @handle_errors
    async def GetImport(self, request: ingest_pb2.GetImportRequest, context: grpc.aio.ServicerContext) -> Any:
        import_id = required(request.import_id, "import_id")
        async with self.database.engine.connect() as connection:
            row = (await connection.execute(IMPORTS.select().where(IMPORTS.c.import_id == import_id))).first()
        if row is None:
            raise LookupError(f"import {import_id!r} not found")
        authorised_tenant(row.tenant)
        return _import_message(row)

    @handle_errors
    async def ListImports(self, request: ingest_pb2.ListImportsRequest, context: grpc.aio.ServicerContext) -> Any:
        tenant = authorised_tenant(request.tenant)
        size = page_size(request.page_size)
        keyset = decode_page_token(request.page_token, 2)
        query = IMPORTS.select().where(IMPORTS.c.tenant == tenant)
        if keyset is not None:
            started, import_id = datetime.fromisoformat(keyset[0]), keyset[1]
            query = query.where(
                or_(
                    IMPORTS.c.started_at < started,
                    and_(IMPORTS.c.started_at == started, IMPORTS.c.import_id < import_id),
                )
            )
        query = query.order_by(IMPORTS.c.started_at.desc(), IMPORTS.c.import_id.desc()).limit(size + 1)
        async with self.database.engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        token = (
            encode_page_token([rows[size - 1].started_at.isoformat(), rows[size - 1].import_id])
            if len(rows) > size
            else ""
        )
        return ingest_pb2.ListImportsResponse(
            imports=[_import_message(row) for row in rows[:size]], next_page_token=token
        )

    @handle_errors
    async def GetCounts(self, request: ingest_pb2.GetCountsRequest, context: grpc.aio.ServicerContext) -> Any:
        tenant = authorised_tenant(request.tenant)
        async with self.database.engine.connect() as connection:
            by_type = (
                await connection.execute(
                    select(EVENTS.c.event_type, func.count())
                    .where(EVENTS.c.tenant == tenant)
                    .group_by(EVENTS.c.event_type)
                )
            ).all()
            rejected = (
                await connection.execute(select(func.count()).select_from(REJECTED).where(REJECTED.c.tenant == tenant))
            ).scalar_one()
            imports = (
                await connection.execute(select(func.count()).select_from(IMPORTS).where(IMPORTS.c.tenant == tenant))
            ).scalar_one()
        return ingest_pb2.Counts(
            events_by_type={event_type: count for event_type, count in by_type},
            rejected_rows=rejected, imports=imports, unsent_events=await count_unsent(self.database, "ingest"),
        )  # fmt: skip

    @handle_errors
    async def ListDeadLetters(
        self, request: ingest_pb2.ListDeadLettersRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        size = page_size(request.page_size)
        keyset = decode_page_token(request.page_token, 2)
        query = DEAD_LETTERS.select()
        if request.consumer:
            query = query.where(DEAD_LETTERS.c.consumer == request.consumer)
        client_tenants = _visible_tenants()
        if client_tenants is not None:
            query = query.where(DEAD_LETTERS.c.tenant.in_(client_tenants))
        if keyset is not None:
            failed, letter_id = datetime.fromisoformat(keyset[0]), keyset[1]
            query = query.where(
                or_(
                    DEAD_LETTERS.c.failed_at < failed,
                    and_(DEAD_LETTERS.c.failed_at == failed, DEAD_LETTERS.c.dead_letter_id < letter_id),
                )
            )
        query = query.order_by(DEAD_LETTERS.c.failed_at.desc(), DEAD_LETTERS.c.dead_letter_id.desc()).limit(size + 1)
        async with self.database.engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        last = rows[size - 1] if len(rows) > size else None
        token = encode_page_token([last.failed_at.isoformat(), last.dead_letter_id]) if last is not None else ""
        return ingest_pb2.ListDeadLettersResponse(
            dead_letters=[_dead_letter_message(row) for row in rows[:size]], next_page_token=token
        )

    @handle_errors
    async def GetDeadLetter(self, request: ingest_pb2.GetDeadLetterRequest, context: grpc.aio.ServicerContext) -> Any:
        return _dead_letter_message(await self._dead_letter(required(request.id, "id")))

    @handle_errors
    async def ReplayDeadLetter(
        self, request: ingest_pb2.ReplayDeadLetterRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        letter_id = (await self._dead_letter(required(request.id, "id"))).dead_letter_id
        try:
            topic, replayed_at = await self.dead_letters.replay(letter_id)
        except ValueError as error:
            raise Conflict(str(error)) from None
        return ingest_pb2.ReplayDeadLetterResponse(topic=topic, replayed_at=replayed_at.isoformat())

    async def _dead_letter(self, letter_id: str) -> Any:
        """Return the dead letter with this id, or the only one the client may see whose id starts with it."""
        async with self.database.engine.connect() as connection:
            row = (
                await connection.execute(DEAD_LETTERS.select().where(DEAD_LETTERS.c.dead_letter_id == letter_id))
            ).first()
            if row is None:
                row = await self._dead_letter_by_prefix(connection, letter_id)
        if row is None:
            raise LookupError(f"dead letter {letter_id!r} not found")
        authorised_tenant(row.tenant)
        return row

    async def _dead_letter_by_prefix(self, connection: Any, prefix: str) -> Any:
        if len(prefix) < MIN_ID_PREFIX:
            return None
        query = DEAD_LETTERS.select().where(DEAD_LETTERS.c.dead_letter_id.startswith(prefix, autoescape=True))
        visible = _visible_tenants()
        if visible is not None:  # letters of other tenants neither match nor make a prefix ambiguous
            query = query.where(DEAD_LETTERS.c.tenant.in_(sorted(visible)))
        rows = (await connection.execute(query.limit(AMBIGUOUS_SHOWN + 1))).all()
        if len(rows) > 1:
            matches = ", ".join(row.dead_letter_id for row in rows[:AMBIGUOUS_SHOWN])
            more = " and more" if len(rows) > AMBIGUOUS_SHOWN else ""
            raise InvalidArgument(
                "id", f"{prefix!r} is the start of several dead letters ({matches}{more}); give more of the id"
            )
        return rows[0] if rows else None


def _visible_tenants() -> frozenset[str] | None:
    client = current_client.get()
    return client.tenants if client is not None else None


def registration(database: Database, dead_letters: DeadLetterStore) -> ServiceRegistration:
    servicer = IngestOps(database, dead_letters)
    return ServiceRegistration(
        add_to_server=lambda server: ingest_pb2_grpc.add_IngestOpsServicer_to_server(servicer, server),
        full_name=ingest_pb2.DESCRIPTOR.services_by_name["IngestOps"].full_name,
        scopes={
            "GetImport": "read",
            "ListImports": "read",
            "GetCounts": "read",
            "ListDeadLetters": "read",
            "GetDeadLetter": "read",
            "ReplayDeadLetter": "write",
        },
    )
