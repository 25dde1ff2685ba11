"""OpenCost allocation API response (``/allocation/compute`` or ``/allocation``): cluster cost per workload.

The response contains a list of allocation sets (one per step of the query), each a
map from name (a namespace, pod, controller ... as aggregated) to an allocation.
Every allocation becomes one usage line whose cost is its ``totalCost``, as a line
of a bill of record. GPU time becomes GPU-seconds from ``gpuHours``, which keeps
fractional GPUs (a pod holding half a GPU for an hour is 1,800 GPU-seconds).
The period is the allocation's own ``start``/``end``, which may be narrower than
the query ``window``.

OpenCost states costs in its configured currency without naming it in the
response; the import takes ``--currency`` and otherwise OpenCost's default, USD.

NOTE: OpenCost divides the cluster's cloud bill among workloads, so importing both
a cluster's cloud bill (CUR, FOCUS) and its OpenCost allocation into one tenant
counts that cluster twice. Import one of them per cluster.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import IO, Any

from services.ingest.normalisers._json import canonical_bytes, load_json
from services.ingest.normalisers.base import (
    ROW_ERRORS,
    FormatError,
    IdentityAllocator,
    ImportContext,
    RowRejected,
    RowResult,
    as_rejection,
    decimal_value,
    non_negative,
    object_at,
    optional_str,
    rfc3339,
    sha256_hex,
    string_tags,
)
from shared.events import Evidence, Money, PricingBasis, UsageBucket, UsageDimensions, UsageRecorded

OPENCOST_DEFAULT_CURRENCY = "USD"
SECONDS_PER_HOUR = Decimal(3600)
PROPERTY_TAGS = ("cluster", "node", "namespace", "controller", "controllerKind", "pod", "container")


class OpenCostAllocation:
    format_name = "opencost-allocation"
    description = "OpenCost allocation API response: cost per namespace, pod or controller, with GPU hours (JSON)"
    reads_json = True

    def detect(self, head: bytes, file_name: str | None) -> bool:
        return b'"totalCost"' in head and b'"gpuHours"' in head

    def rows(self, stream: IO[bytes], context: ImportContext) -> Iterator[RowResult]:
        document = load_json(stream, "the OpenCost allocation response")
        sets = document.get("data") if isinstance(document, dict) else None
        if not isinstance(sets, list):
            raise FormatError("an OpenCost allocation response must be an object with a 'data' list of allocation sets")
        currency = context.currency or OPENCOST_DEFAULT_CURRENCY
        identities = IdentityAllocator(context.tenant, self.format_name)
        row_number = 0
        try:
            for set_index, allocation_set in enumerate(sets):
                if allocation_set is None:
                    continue  # OpenCost writes null for a step without data
                if not isinstance(allocation_set, dict):
                    row_number += 1
                    error = RowRejected(f"data[{set_index}]", "must be a map of allocations")
                    yield RowResult(row_number, canonical_bytes(allocation_set), error=error)
                    continue
                for name, allocation in allocation_set.items():
                    row_number += 1
                    field_path = f"data[{set_index}].{name}"
                    raw = canonical_bytes(allocation)
                    try:
                        event = self._event(allocation, field_path, currency, context, identities, row_number, raw)
                    except ROW_ERRORS as error:
                        yield RowResult(row_number, raw, error=as_rejection(error))
                    else:
                        yield RowResult(row_number, raw, event=event)
        finally:
            identities.close()

    def _event(
        self,
        allocation: Any,
        field_path: str,
        currency: str,
        context: ImportContext,
        identities: IdentityAllocator,
        row_number: int,
        raw: bytes,
    ) -> UsageRecorded:
        if not isinstance(allocation, dict):
            raise RowRejected(field_path, "must be an object")
        start = rfc3339(allocation.get("start"), f"{field_path}.start")
        end = rfc3339(allocation.get("end"), f"{field_path}.end")
        if end < start:
            raise RowRejected(f"{field_path}.end", f"is before start ({end} < {start})")
        total = decimal_value(allocation.get("totalCost"), f"{field_path}.totalCost")
        assert total is not None
        gpu_hours = non_negative(
            decimal_value(allocation.get("gpuHours"), f"{field_path}.gpuHours", required=False),
            f"{field_path}.gpuHours",
        )

        properties = object_at(allocation, "properties", f"{field_path}.properties")
        tags = string_tags({name: properties.get(name) for name in PROPERTY_TAGS})
        labels = properties.get("labels")
        if isinstance(labels, dict):
            tags |= {f"label:{key}": value for key, value in string_tags(labels).items()}
        name = optional_str(allocation.get("name"), f"{field_path}.name")
        tags |= string_tags({"allocation": name})

        quantities = {UsageBucket.GPU_SECONDS: gpu_hours * SECONDS_PER_HOUR} if gpu_hours else {}
        dimensions = UsageDimensions(
            resource_id=optional_str(properties.get("providerID"), f"{field_path}.properties.providerID"), tags=tags
        )
        natural_key = {"name": name, "properties": properties, "start": start.isoformat(), "end": end.isoformat()}
        return UsageRecorded(
            event_id=identities.event_id(natural_key),
            occurred_at=start,
            source=f"ingest.{self.format_name}",
            tenant=context.tenant,
            correlation_id=context.correlation_id,
            provider="opencost",
            service="kubernetes",
            period_start=start,
            period_end=end,
            dimensions=dimensions,
            quantities=quantities,
            pricing_basis=PricingBasis.PROVIDER_BILLED,
            provider_cost=Money(amount=total, currency=currency),
            evidence=Evidence(
                format=self.format_name, file_name=context.file_name, row_number=row_number, raw_sha256=sha256_hex(raw)
            ),
        )
