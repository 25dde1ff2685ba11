"""The ingest ops API's dead letters over a real channel: found by full id or by a unique prefix of it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest

from services.ingest.dead_letters import DEAD_LETTERS
from services.ingest.ops import registration
from services.ingest.tables import TABLES
from shared.db import Database
from shared.protos.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from tests.ops_support import LocalOps, local_ops

LETTERS = {
    "dlq:allocation:usage.recorded:0:17": "acme",
    "dlq:allocation:usage.recorded:0:18": "acme",
    "dlq:risk:cost.allocated:1:4": "acme",
    "dlq:value:outcome.recorded:0:9": "globex",
}


@pytest.fixture
async def dead_letters(tmp_path: Path) -> AsyncIterator[tuple[LocalOps, Any]]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'ingest.db'}")
    await database.create_tables([*TABLES, DEAD_LETTERS])
    async with database.transaction() as connection:
        await connection.execute(
            DEAD_LETTERS.insert(),
            [
                {
                    "dead_letter_id": letter_id,
                    "consumer": letter_id.split(":")[1],
                    "tenant": tenant,
                    "original_bytes": b"{}",
                    "reason": "invalid event",
                    "failed_at": datetime(2026, 11, 2, tzinfo=UTC),
                }
                for letter_id, tenant in LETTERS.items()
            ],
        )
    try:
        async with local_ops(tmp_path, "ingest", [registration(database, None)]) as ops:  # type: ignore[arg-type]
            async with grpc.aio.insecure_channel(ops.target) as channel:
                yield ops, ingest_pb2_grpc.IngestOpsStub(channel)
    finally:
        await database.dispose()


async def get(ops: LocalOps, stub: Any, letter_id: str, client: str = "reader") -> Any:
    request = ingest_pb2.GetDeadLetterRequest(id=letter_id)
    return await stub.GetDeadLetter(request, metadata=ops.bearer(client))


async def test_dead_letter_by_unique_prefix(dead_letters: tuple[LocalOps, Any]) -> None:
    ops, stub = dead_letters
    letter = await get(ops, stub, "dlq:risk")
    assert letter.id == "dlq:risk:cost.allocated:1:4"


async def test_full_id_wins_over_prefix(dead_letters: tuple[LocalOps, Any]) -> None:
    ops, stub = dead_letters
    letter = await get(ops, stub, "dlq:allocation:usage.recorded:0:17")
    assert letter.id == "dlq:allocation:usage.recorded:0:17"


async def test_ambiguous_prefix_names_matches(dead_letters: tuple[LocalOps, Any]) -> None:
    ops, stub = dead_letters
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await get(ops, stub, "dlq:allocation:usage.recorded:0:1")
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "dlq:allocation:usage.recorded:0:17, dlq:allocation:usage.recorded:0:18" in (raised.value.details() or "")


async def test_short_prefix_not_found(dead_letters: tuple[LocalOps, Any]) -> None:
    ops, stub = dead_letters
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await get(ops, stub, "dlq:r")  # 5 characters, below the 6 a prefix needs
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_prefix_ignores_other_tenants(dead_letters: tuple[LocalOps, Any]) -> None:
    ops, stub = dead_letters
    # acme-admin may read only acme's letters, so globex's letter under "dlq:value" is not found for it.
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await get(ops, stub, "dlq:value", client="acme-admin")
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    letter = await get(ops, stub, "dlq:value")
    assert letter.id == "dlq:value:outcome.recorded:0:9"
