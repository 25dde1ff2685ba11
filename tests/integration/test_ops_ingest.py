"""The ingest ops API over real gRPC channels: health, reflection, tokens and scopes, errors, dead letters."""

from __future__ import annotations

import asyncio

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from aifinops.stack import SERVICES, Stack
from shared.kafka import EventPublisher
from shared.protos.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from shared.topics import Topic
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.integration

TENANT = "ops-ingest"


def bearer(stack: Stack, client: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {stack.tokens[client]}"),)


async def ingest_stub(stack: Stack) -> tuple[grpc.aio.Channel, ingest_pb2_grpc.IngestOpsStub]:
    channel = grpc.aio.insecure_channel(stack.grpc_target("ingest"))
    return channel, ingest_pb2_grpc.IngestOpsStub(channel)


async def test_every_service_reports_serving_without_a_token(stack: Stack) -> None:
    for service in SERVICES:
        async with grpc.aio.insecure_channel(stack.grpc_target(service)) as channel:
            response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert response.status == health_pb2.HealthCheckResponse.SERVING, service


async def test_reflection_lists_the_ops_service(stack: Stack) -> None:
    async with grpc.aio.insecure_channel(stack.grpc_target("ingest")) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = [service.name async for response in responses for service in response.list_services_response.service]
    assert "aifinops.ingest.v1.IngestOps" in names


async def test_counts_after_a_webhook(stack: Stack) -> None:
    body = (EXAMPLES / "data" / "anthropic_usage_webhook_2026-11.json").read_bytes()
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            stack.url("ingest", "/v1/usage/anthropic-usage-report"),
            content=body,
            headers=stack.webhook_headers(body, TENANT),
        )
    assert response.status_code == 202
    channel, stub = await ingest_stub(stack)
    async with channel:
        counts = await stub.GetCounts(ingest_pb2.GetCountsRequest(tenant=TENANT), metadata=bearer(stack, "reader"))
        imports = await stub.ListImports(
            ingest_pb2.ListImportsRequest(tenant=TENANT, page_size=1), metadata=bearer(stack, "reader")
        )
    assert counts.events_by_type["usage.recorded"] == 2  # the sample holds two results
    assert counts.imports == 1
    assert imports.imports[0].accepted == 2
    assert imports.imports[0].channel == "webhook"


@pytest.mark.parametrize(
    ("metadata", "code"),
    [
        ((), grpc.StatusCode.UNAUTHENTICATED),
        ((("authorization", "Bearer not-a-known-token"),), grpc.StatusCode.UNAUTHENTICATED),
        ((("authorization", "Basic abc"),), grpc.StatusCode.UNAUTHENTICATED),
    ],
)
async def test_calls_without_a_valid_token_are_refused(stack: Stack, metadata: tuple, code: grpc.StatusCode) -> None:
    channel, stub = await ingest_stub(stack)
    async with channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.GetCounts(ingest_pb2.GetCountsRequest(tenant=TENANT), metadata=metadata, timeout=5)
    assert raised.value.code() == code


async def test_reader_cannot_replay(stack: Stack) -> None:
    channel, stub = await ingest_stub(stack)
    async with channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.ReplayDeadLetter(ingest_pb2.ReplayDeadLetterRequest(id="x"), metadata=bearer(stack, "reader"))
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "write" in (raised.value.details() or "")


async def test_bad_arguments_name_the_field(stack: Stack) -> None:
    channel, stub = await ingest_stub(stack)
    async with channel:
        with pytest.raises(grpc.aio.AioRpcError) as token_error:
            await stub.ListImports(
                ingest_pb2.ListImportsRequest(tenant=TENANT, page_token="garbage!"), metadata=bearer(stack, "admin")
            )
        with pytest.raises(grpc.aio.AioRpcError) as size_error:
            await stub.ListImports(
                ingest_pb2.ListImportsRequest(tenant=TENANT, page_size=-1), metadata=bearer(stack, "admin")
            )
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.GetImport(ingest_pb2.GetImportRequest(import_id="nope"), metadata=bearer(stack, "admin"))
        with pytest.raises(grpc.aio.AioRpcError) as no_tenant:
            await stub.GetCounts(ingest_pb2.GetCountsRequest(), metadata=bearer(stack, "admin"))
    assert token_error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (token_error.value.details() or "").startswith("page_token:")
    assert size_error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (size_error.value.details() or "").startswith("page_size:")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert no_tenant.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (no_tenant.value.details() or "").startswith("tenant:")


async def test_deadline_is_honoured(stack: Stack) -> None:
    channel, stub = await ingest_stub(stack)
    async with channel:
        # A deadline already past fails every time. With a 1 microsecond deadline this fast call sometimes
        # completed on SQLite, so the test passed or failed by timing.
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.GetCounts(
                ingest_pb2.GetCountsRequest(tenant=TENANT), metadata=bearer(stack, "admin"), timeout=-1
            )
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_poison_message_is_listed_and_replayable(stack: Stack) -> None:
    poison = b'{"event_type": "usage.recorded", "tenant": "ops-ingest", "quantities": {"output_tokens": -1}}'
    publisher = EventPublisher(stack.bootstrap_servers, client_id="test-poison")
    await publisher.start()
    try:
        await publisher.send_raw(str(Topic.USAGE_RECORDED), poison, key=b"ops-ingest|poison")
    finally:
        await publisher.stop()
    channel, stub = await ingest_stub(stack)
    async with channel:
        letter = None
        for _ in range(100):  # the allocation consumer dead-letters it; ingest stores the letter
            page = await stub.ListDeadLetters(
                ingest_pb2.ListDeadLettersRequest(consumer="allocation", page_size=50), metadata=bearer(stack, "admin")
            )
            letter = next((item for item in page.dead_letters if item.original_bytes == poison), None)
            if letter is not None:
                break
            await asyncio.sleep(0.2)
        assert letter is not None
        assert letter.original_topic == str(Topic.USAGE_RECORDED)
        assert "invalid usage.recorded event" in letter.reason
        assert letter.attempts == 1
        fetched = await stub.GetDeadLetter(
            ingest_pb2.GetDeadLetterRequest(id=letter.id), metadata=bearer(stack, "admin")
        )
        assert fetched.original_bytes == poison
        replayed = await stub.ReplayDeadLetter(
            ingest_pb2.ReplayDeadLetterRequest(id=letter.id), metadata=bearer(stack, "admin")
        )
        assert replayed.topic == str(Topic.USAGE_RECORDED)
        again = await stub.GetDeadLetter(ingest_pb2.GetDeadLetterRequest(id=letter.id), metadata=bearer(stack, "admin"))
        assert again.replayed_at == replayed.replayed_at


async def test_a_tenant_token_sees_only_its_tenant(stack: Stack) -> None:
    channel, stub = await ingest_stub(stack)
    async with channel:
        own = await stub.GetCounts(
            ingest_pb2.GetCountsRequest(tenant=TENANT), metadata=bearer(stack, "ops-ingest-only")
        )
        implied = await stub.GetCounts(ingest_pb2.GetCountsRequest(), metadata=bearer(stack, "ops-ingest-only"))
        with pytest.raises(grpc.aio.AioRpcError) as other:
            await stub.GetCounts(
                ingest_pb2.GetCountsRequest(tenant="pipeline"), metadata=bearer(stack, "ops-ingest-only")
            )
        with pytest.raises(grpc.aio.AioRpcError) as listed:
            await stub.ListImports(
                ingest_pb2.ListImportsRequest(tenant="pipeline"), metadata=bearer(stack, "ops-ingest-only")
            )
    assert own == implied  # a token limited to one tenant may leave the tenant out
    assert other.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "pipeline" in (other.value.details() or "")
    assert listed.value.code() == grpc.StatusCode.PERMISSION_DENIED
