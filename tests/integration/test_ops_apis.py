"""The allocation, risk, value and optimizer ops APIs and the CLI over them, against the running stack.

The tenant's usage is the OpenAI dashboard sample. All of it belongs to project proj_4BhNtYH0z7dWbBtzhibxa65W,
which the example rules give to team document-ai. The pipeline test works its cost out as 2.04584475 USD in
2025-10.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from decimal import Decimal
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.json_format import MessageToDict, ParseDict
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from aifinops.report import build_report
from aifinops.stack import Stack
from services.ingest.batch import import_file
from shared.protos.allocation.v1 import allocation_pb2, allocation_pb2_grpc
from shared.protos.common.v1 import common_pb2
from shared.protos.risk.v1 import risk_pb2, risk_pb2_grpc
from tests.conftest import EXAMPLES, ROOT

pytestmark = pytest.mark.integration

TENANT = "ops-apis"
DOCUMENT_AI = Decimal("2.04584475")
OPS_SERVICES = {
    "ingest": "aifinops.ingest.v1.IngestOps",
    "allocation": "aifinops.allocation.v1.AllocationOps",
    "risk": "aifinops.risk.v1.RiskOps",
    "value": "aifinops.value.v1.ValueOps",
    "optimizer": "aifinops.optimizer.v1.OptimizerOps",
}


@pytest.fixture(scope="module")
async def loaded(stack: Stack) -> Stack:
    path = EXAMPLES / "data" / "dashboard_export_usage_completions.tsv"
    result = await import_file(path, settings=stack.settings(), tenant=TENANT)
    assert result.summary.accepted == 6
    await stack.wait_until_drained()
    return stack


def bearer(stack: Stack, client: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {stack.tokens[client]}"),)


def cli(stack: Stack, *arguments: str) -> Any:
    """Run an aifinops command against the stack's ops APIs and return its JSON output."""
    result = subprocess.run(
        [sys.executable, "-m", "aifinops.cli", *arguments, "--tenant", TENANT, "--json"],
        env=stack.environment() | stack.ops_client_environment("reader"),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def reflected(target: str, request: reflection_pb2.ServerReflectionRequest) -> Any:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        return [response async for response in stub.ServerReflectionInfo(iter([request]))][0]


async def test_reflection_describes_every_ops_service(stack: Stack) -> None:
    for service, full_name in OPS_SERVICES.items():
        listing = await reflected(stack.grpc_target(service), reflection_pb2.ServerReflectionRequest(list_services=""))
        names = {item.name for item in listing.list_services_response.service}
        assert {full_name, "grpc.health.v1.Health"} <= names, service

        described = await reflected(
            stack.grpc_target(service), reflection_pb2.ServerReflectionRequest(file_containing_symbol=full_name)
        )
        assert described.file_descriptor_response.file_descriptor_proto, service


# One read method per service, called the way grpcurl calls it: from descriptors fetched by reflection alone.
REFLECTED_CALLS = {
    "ingest": ("GetCounts", {"tenant": TENANT}),
    "allocation": ("ListAllocationRules", {"page_size": 1}),
    "risk": ("ListBudgets", {"tenant": TENANT, "page_size": 1}),
    "value": ("ListUnitEconomics", {"tenant": TENANT}),
    "optimizer": ("ListRecommendations", {"tenant": TENANT, "page_size": 1}),
}


async def call_by_reflection(stack: Stack, service: str, method: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Call a unary method knowing only its name, with message types built from the server's own descriptors."""
    full_name = OPS_SERVICES[service]
    response = await reflected(
        stack.grpc_target(service), reflection_pb2.ServerReflectionRequest(file_containing_symbol=full_name)
    )
    pool = descriptor_pool.DescriptorPool()
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in response.file_descriptor_response.file_descriptor_proto
    ]
    for proto in sorted(files, key=lambda item: item.name != "shared/protos/common/v1/common.proto"):
        pool.Add(proto)
    method_descriptor = pool.FindServiceByName(full_name).FindMethodByName(method)
    request_class = message_factory.GetMessageClass(method_descriptor.input_type)
    response_class = message_factory.GetMessageClass(method_descriptor.output_type)
    async with grpc.aio.insecure_channel(stack.grpc_target(service)) as channel:
        call = channel.unary_unary(
            f"/{full_name}/{method}",
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=response_class.FromString,
        )
        reply = await call(ParseDict(fields, request_class()), metadata=bearer(stack, "reader"), timeout=10)
    return MessageToDict(reply, preserving_proto_field_name=True)


async def test_every_service_is_callable_by_reflection(loaded: Stack) -> None:
    replies = {
        service: await call_by_reflection(loaded, service, method, fields)
        for service, (method, fields) in REFLECTED_CALLS.items()
    }

    assert replies["ingest"]["events_by_type"] == {"usage.recorded": "6"}  # int64 values print as strings in JSON
    assert replies["allocation"]["rules"][0]["rule_id"] == "document-ai-project"
    assert len(replies["risk"]["budgets"]) == 1
    assert {row["use_case"] for row in replies["value"]["unit_economics"]} == {"document-extraction"}
    assert len(replies["optimizer"]["recommendations"]) == 1


async def test_cli_figures_match_the_report(loaded: Stack) -> None:
    report = await build_report(loaded.settings(), TENANT)
    spend, findings, recommendations, economics = await asyncio.gather(
        asyncio.to_thread(cli, loaded, "spend", "--by", "team", "--period", "total", "--spend-only"),
        asyncio.to_thread(cli, loaded, "findings", "list", "--all"),
        asyncio.to_thread(cli, loaded, "recommendations", "list"),
        asyncio.to_thread(cli, loaded, "economics"),
    )

    assert {row["dimensions"]["team"]: Decimal(row["amount"]["amount"]) for row in spend} == {
        team: amounts["USD"] for team, amounts in report.by_team.items()
    }
    assert Decimal(next(row["amount"]["amount"] for row in spend if row["dimensions"]["team"] == "document-ai")) == (
        DOCUMENT_AI
    )
    assert sorted((item["finding_id"], item["status"], item["title"]) for item in findings) == sorted(
        (item["finding_id"], item["status"], item["title"]) for item in report.findings
    )
    assert {item["finding_id"] for item in findings}  # the 2.00 USD document-ai budget is exceeded
    assert [
        (item["recommendation_id"], Decimal(item["estimated_monthly_savings"]["amount"]), item["status"])
        for item in recommendations
    ] == [
        (item["recommendation_id"], Decimal(item["estimated_monthly_savings"]), item["status"])
        for item in report.recommendations
    ]
    assert economics == report.unit_economics


async def test_budget_set_checks_spend_and_outlives_restart(loaded: Stack) -> None:
    budget = risk_pb2.Budget(
        budget_id="ops-apis-document-ai",
        scope_key="team",
        scope_value="document-ai",
        amount=common_pb2.Money(amount="4.00", currency="USD"),
        thresholds=[50],
        tenant=TENANT,
    )
    async with grpc.aio.insecure_channel(loaded.grpc_target("risk")) as channel:
        stub = risk_pb2_grpc.RiskOpsStub(channel)
        response = await stub.SetBudget(
            risk_pb2.SetBudgetRequest(budget=budget, set_by="ops-test"), metadata=bearer(loaded, "admin")
        )
        found = await stub.ListFindings(
            risk_pb2.ListFindingsRequest(tenant=TENANT, kind="budget_threshold"), metadata=bearer(loaded, "reader")
        )
    assert response.findings_changed == 1
    [finding] = [item for item in found.findings if "ops-apis-document-ai" in item.title]
    # 2.04584475 × 100 / 4.00 = 51.146..., rounded half-even to 51.15 %, past the 50 % threshold.
    assert finding.title == "team:document-ai reached 51.15% of budget ops-apis-document-ai for 2025-10"

    loaded.stop_service("risk")
    loaded.start_service("risk")
    await loaded.wait_ready(("risk",), timeout_s=60)
    async with grpc.aio.insecure_channel(loaded.grpc_target("risk")) as channel:
        stub = risk_pb2_grpc.RiskOpsStub(channel)
        listed = await stub.ListBudgets(risk_pb2.ListBudgetsRequest(tenant=TENANT), metadata=bearer(loaded, "reader"))
    [stored] = [item for item in listed.budgets if item.budget_id == "ops-apis-document-ai"]
    assert (stored.source, stored.set_by, stored.amount.amount, list(stored.thresholds)) == (
        "api",
        "ops-test",
        "4.00",
        [50],
    )


@pytest.mark.parametrize(
    ("method", "request_message", "prefix"),
    [
        ("ListFindings", risk_pb2.ListFindingsRequest(tenant=TENANT, statuses=["closed"]), "statuses:"),
        ("GetFinding", risk_pb2.GetFindingRequest(tenant=TENANT, finding_id="abc"), "finding_id:"),
        ("AcceptRisk", risk_pb2.ChangeFindingRequest(tenant=TENANT, finding_id="abcdef"), "note:"),
        ("ListBudgets", risk_pb2.ListBudgetsRequest(), "tenant:"),
        (
            "SetBudget",
            risk_pb2.SetBudgetRequest(
                budget=risk_pb2.Budget(
                    budget_id="bad", scope_key="team", scope_value="x", amount=common_pb2.Money(amount="-1")
                )
            ),
            "budget.amount:",
        ),
    ],
)
async def test_bad_risk_requests_name_the_field(stack: Stack, method: str, request_message: Any, prefix: str) -> None:
    async with grpc.aio.insecure_channel(stack.grpc_target("risk")) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await getattr(risk_pb2_grpc.RiskOpsStub(channel), method)(request_message, metadata=bearer(stack, "admin"))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (raised.value.details() or "").startswith(prefix)


async def test_unknown_finding_is_not_found(stack: Stack) -> None:
    async with grpc.aio.insecure_channel(stack.grpc_target("risk")) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await risk_pb2_grpc.RiskOpsStub(channel).GetFinding(
                risk_pb2.GetFindingRequest(tenant=TENANT, finding_id="ffffffffff"), metadata=bearer(stack, "admin")
            )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("metadata", "code"),
    [
        ((), grpc.StatusCode.UNAUTHENTICATED),
        ((("authorization", "Bearer wrong"),), grpc.StatusCode.UNAUTHENTICATED),
        ("reader", grpc.StatusCode.PERMISSION_DENIED),
    ],
)
async def test_budget_changes_need_a_write_token(stack: Stack, metadata: Any, code: grpc.StatusCode) -> None:
    sent = bearer(stack, metadata) if isinstance(metadata, str) else metadata
    request = risk_pb2.SetBudgetRequest(budget=risk_pb2.Budget(budget_id="never-stored"))
    async with grpc.aio.insecure_channel(stack.grpc_target("risk")) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await risk_pb2_grpc.RiskOpsStub(channel).SetBudget(request, metadata=sent, timeout=5)
    assert raised.value.code() == code


async def test_spend_stream_honours_the_deadline(loaded: Stack) -> None:
    request = allocation_pb2.StreamSpendRequest(tenant=TENANT, dimensions=["team", "model"], period="day")
    async with grpc.aio.insecure_channel(loaded.grpc_target("allocation")) as channel:
        stub = allocation_pb2_grpc.AllocationOpsStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            _ = [row async for row in stub.StreamSpend(request, metadata=bearer(loaded, "reader"), timeout=0.001)]
        rows = [row async for row in stub.StreamSpend(request, metadata=bearer(loaded, "reader"), timeout=10)]
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert sum(Decimal(row.amount.amount) for row in rows) == DOCUMENT_AI
