"""The recommendation lifecycle over the optimizer ops API, on a real channel to an in-process server.

The server's outbox records what it publishes, so each change is checked as stored and as sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest

from services.optimizer.handlers import OptimizerHandler
from services.optimizer.ops import registration
from services.optimizer.policy import OptimizerPolicy, load_alternatives
from services.optimizer.tables import TABLES
from services.value.ops import registration as value_registration
from services.value.tables import TABLES as VALUE_TABLES
from shared.catalogue import PriceCatalogue
from shared.db import Database
from shared.outbox import count_unsent
from shared.protos.optimizer.v1 import optimizer_pb2, optimizer_pb2_grpc
from shared.protos.value.v1 import value_pb2, value_pb2_grpc
from tests.ops_support import LocalOps, local_ops
from tests.unit.factories import incoming, sqlite_outbox
from tests.unit.test_optimizer_handler import OCTOBER

CHEAPER_GPT_4O = ("cheaper_model", "team:document-ai model:openai/gpt-4o tier:standard")


@dataclass
class Optimizer:
    ops: LocalOps
    stub: Any
    database: Database
    publisher: Any


@pytest.fixture
async def optimizer(tmp_path: Path) -> AsyncIterator[Optimizer]:
    database, outbox, publisher = await sqlite_outbox(tmp_path, "optimizer", TABLES)
    policy = OptimizerPolicy(non_interactive_use_cases=frozenset({"document-extraction"}))
    handler = OptimizerHandler(database, outbox, PriceCatalogue.load(), policy, load_alternatives())
    await handler.handle(incoming(*OCTOBER))
    publisher.sent.clear()
    try:
        async with local_ops(tmp_path, "optimizer", [registration(database, outbox)]) as ops:
            async with grpc.aio.insecure_channel(ops.target) as channel:
                yield Optimizer(ops, optimizer_pb2_grpc.OptimizerOpsStub(channel), database, publisher)
    finally:
        await database.dispose()


async def list_all(optimizer: Optimizer, **fields: Any) -> list[Any]:
    request = optimizer_pb2.ListRecommendationsRequest(tenant="acme", page_size=2, **fields)
    found = []
    while True:
        page = await optimizer.stub.ListRecommendations(request, metadata=optimizer.ops.bearer("reader"))
        found.extend(page.recommendations)
        if not page.next_page_token:
            return found
        request.page_token = page.next_page_token


async def test_pages_cover_every_recommendation_once(optimizer: Optimizer) -> None:
    found = await list_all(optimizer)
    ids = [item.recommendation_id for item in found]
    savings = [Decimal(item.estimated_monthly_savings.amount) for item in found]

    assert len(ids) == 7  # as the optimizer handler test finds for the October usage
    assert len(set(ids)) == 7
    assert savings == sorted(savings, reverse=True)


async def test_dismiss_is_stored_published_and_final(optimizer: Optimizer) -> None:
    views = {(item.kind, item.scope): item for item in await list_all(optimizer)}
    target = views[CHEAPER_GPT_4O].recommendation_id[:8]
    admin = optimizer.ops.bearer("admin")
    dismissal = optimizer_pb2.ChangeRecommendationRequest(
        tenant="acme", recommendation_id=target, changed_by="bob", reason="quality too low on the sample"
    )

    dismissed = await optimizer.stub.DismissRecommendation(dismissal, metadata=admin)

    assert (dismissed.status, dismissed.revision) == ("dismissed", 2)
    assert [item.event_type for item in optimizer.publisher.sent] == ["savings.recommended"]
    assert await count_unsent(optimizer.database, "optimizer") == 0
    shown = await optimizer.stub.GetRecommendation(
        optimizer_pb2.GetRecommendationRequest(tenant="acme", recommendation_id=target), metadata=admin
    )
    assert shown.status_reason == "quality too low on the sample"
    assert [step.status for step in shown.history] == ["open", "dismissed"]
    assert shown.history[1].changed_by == "bob"

    accept = optimizer_pb2.ChangeRecommendationRequest(tenant="acme", recommendation_id=target)
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await optimizer.stub.AcceptRecommendation(accept, metadata=admin)
    assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "is dismissed; it can move to open, not to accepted" in (again.value.details() or "")


@pytest.mark.parametrize(
    ("method", "fields", "code", "prefix"),
    [
        ("AcceptRecommendation", {"recommendation_id": "abcd"}, grpc.StatusCode.INVALID_ARGUMENT, "recommendation_id:"),
        ("AcceptRecommendation", {"recommendation_id": "ffffffff"}, grpc.StatusCode.NOT_FOUND, "no recommendation"),
        ("DismissRecommendation", {"recommendation_id": "ffffffff"}, grpc.StatusCode.INVALID_ARGUMENT, "reason:"),
        ("ListRecommendations", {"status": "later"}, grpc.StatusCode.INVALID_ARGUMENT, "status:"),
        ("ListRecommendations", {"page_token": "not-ours"}, grpc.StatusCode.INVALID_ARGUMENT, "page_token:"),
    ],
)
async def test_bad_requests_name_the_field(
    optimizer: Optimizer, method: str, fields: dict[str, str], code: grpc.StatusCode, prefix: str
) -> None:
    kind = optimizer_pb2.ListRecommendationsRequest if method == "ListRecommendations" else None
    request = (kind or optimizer_pb2.ChangeRecommendationRequest)(tenant="acme", **fields)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await getattr(optimizer.stub, method)(request, metadata=optimizer.ops.bearer("admin"))
    assert raised.value.code() == code
    assert (raised.value.details() or "").startswith(prefix)


async def test_reader_cannot_change_a_recommendation(optimizer: Optimizer) -> None:
    request = optimizer_pb2.ChangeRecommendationRequest(tenant="acme", recommendation_id="ffffffff")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await optimizer.stub.AcceptRecommendation(request, metadata=optimizer.ops.bearer("reader"))
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_economics_without_data(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'value.db'}")
    await database.create_tables(VALUE_TABLES)
    try:
        async with local_ops(tmp_path, "value", [value_registration(database)]) as ops:
            async with grpc.aio.insecure_channel(ops.target) as channel:
                stub = value_pb2_grpc.ValueOpsStub(channel)
                response = await stub.ListUnitEconomics(
                    value_pb2.ListUnitEconomicsRequest(tenant="acme"), metadata=ops.bearer("reader")
                )
    finally:
        await database.dispose()
    assert list(response.unit_economics) == []
    assert response.next_page_token == ""
