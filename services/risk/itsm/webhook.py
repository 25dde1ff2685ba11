"""Generic webhook connector: every new revision of a finding is POSTed as signed JSON.

The body is ``{"delivery_id", "event", "finding"}``, where ``event`` is ``finding.opened`` for the first
delivery and ``finding.updated`` after it, and ``finding`` is the finding's ``risk.flagged`` content. The
``X-Aifinops-Signature`` header signs the body (see ``signing``) and ``X-Aifinops-Delivery`` repeats the
delivery id, ``<finding id>:r<revision>``, so a receiver can drop a delivery it already has: a retry after
a lost response sends the same id. A receiver that responds with ``{"ticket": "<reference>"}`` has that
reference stored as the ticket key; status changes come back through the risk service's inbound webhook.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from pydantic import SecretStr

from services.risk.itsm.base import FindingView, RemoteState, RemoteTicket, call
from services.risk.itsm.signing import DELIVERY_HEADER, SIGNATURE_HEADER, sign

SYSTEM = "webhook"


class WebhookConnector:
    system = SYSTEM

    def __init__(
        self, url: str, secret: SecretStr, *, timeout_s: float, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.url = url
        self.secret = secret
        self.client = httpx.AsyncClient(timeout=timeout_s, transport=transport)

    async def close(self) -> None:
        await self.client.aclose()

    async def _deliver(self, finding: FindingView, event: str) -> httpx.Response:
        delivery_id = f"{finding.finding_id}:r{finding.revision}"
        payload = {
            "delivery_id": delivery_id,
            "event": event,
            "finding": {
                "finding_id": finding.finding_id,
                "tenant": finding.tenant,
                "kind": finding.kind,
                "severity": finding.severity,
                "status": finding.status.value,
                "subject": finding.subject,
                "owner": finding.owner,
                "title": finding.title,
                "facts": finding.facts,
                "interpretation": finding.interpretation,
                "revision": finding.revision,
                "status_changed_by": finding.status_changed_by,
                "status_note": finding.status_note,
            },
        }
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.secret.get_secret_value(), body),
            DELIVERY_HEADER: delivery_id,
        }
        return await call(self.client, SYSTEM, "POST", self.url, content=body, headers=headers)

    async def find(self, finding: FindingView) -> RemoteTicket | None:
        return None  # receivers drop repeated delivery ids, so a repeated first delivery is harmless

    async def create(self, finding: FindingView) -> RemoteTicket:
        response = await self._deliver(finding, "finding.opened")
        reference = finding.finding_id
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if isinstance(answer, dict) and isinstance(answer.get("ticket"), str) and answer["ticket"]:
            reference = answer["ticket"]
        return RemoteTicket(external_id=reference, key=reference, url=None, state=finding.status.value)

    async def update(self, ticket: Any, finding: FindingView) -> str | None:
        await self._deliver(finding, "finding.updated")
        return finding.status.value

    async def read_state(self, ticket: Any) -> RemoteState | None:
        return None
