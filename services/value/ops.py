"""The value ops API (``aifinops.value.v1.ValueOps``): unit economics per use case and month."""

from __future__ import annotations

from typing import Any

import grpc

from services.value.queries import read_unit_economics
from shared.db import Database
from shared.grpc_api import (
    authorised_tenant,
    decode_page_token,
    encode_page_token,
    handle_errors,
    keyset_page,
    page_size,
)
from shared.ops import ServiceRegistration
from shared.protos.common.v1 import common_pb2
from shared.protos.value.v1 import value_pb2, value_pb2_grpc

# Figures that read_unit_economics returns as exact decimal strings, or None when unknown.
DECIMAL_FIGURES = (
    "outcomes",
    "cost_per_outcome",
    "value",
    "net_benefit",
    "roi_percent",
    "payback_months",
    "baseline_cost_per_outcome",
    "previous_cost_per_outcome",
    "cost_per_outcome_change_percent",
    "previous_roi_percent",
)


def unit_economics_message(row: dict[str, Any]) -> value_pb2.UnitEconomics:
    figures = {name: row[name] if row[name] is not None else "" for name in DECIMAL_FIGURES}
    return value_pb2.UnitEconomics(
        use_case=row["use_case"], period=row["period"], owner=row["owner"] or "",
        cost=common_pb2.Money(amount=row["cost"], currency=row["currency"]), outcome_kind=row["outcome_kind"],
        outcome_unit=row["outcome_unit"] or "", value_source=row["value_source"] or "",
        previous_period=row["previous_period"] or "", cost_events=row["cost_events"],
        value_linked=row["value_linked"], revision=row["revision"], **figures,
    )  # fmt: skip


def _sort_key(row: dict[str, Any]) -> tuple[str, str, str]:
    return (row["use_case"], row["period"], row["outcome_kind"])


class ValueOps(value_pb2_grpc.ValueOpsServicer):
    def __init__(self, database: Database) -> None:
        self.database = database

    @handle_errors
    async def ListUnitEconomics(
        self, request: value_pb2.ListUnitEconomicsRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        tenant = authorised_tenant(request.tenant)
        size = page_size(request.page_size)
        keyset = decode_page_token(request.page_token, 3)
        after = tuple(keyset) if keyset is not None else None
        rows = sorted(await read_unit_economics(self.database, tenant, request.use_case or None), key=_sort_key)
        page, last = keyset_page(rows, _sort_key, size, after)
        return value_pb2.ListUnitEconomicsResponse(
            unit_economics=[unit_economics_message(row) for row in page],
            next_page_token=encode_page_token(list(last)) if last is not None else "",
        )


def registration(database: Database) -> ServiceRegistration:
    servicer = ValueOps(database)
    return ServiceRegistration(
        add_to_server=lambda server: value_pb2_grpc.add_ValueOpsServicer_to_server(servicer, server),
        full_name=value_pb2.DESCRIPTOR.services_by_name["ValueOps"].full_name,
        scopes={"ListUnitEconomics": "read"},
    )
