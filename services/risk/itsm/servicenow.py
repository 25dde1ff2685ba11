"""ServiceNow connector: one incident per finding through the Table API (``/api/now/table/incident``).

Every field of a Table API record is a string, including numbers and choice values. An incident carries the
finding in ``correlation_id`` (``aifinops:<finding id>``), which is how a retried create finds the incident
that an earlier, unanswered request may already have opened. Incident states: 1 New, 2 In Progress, 3 On
Hold, 6 Resolved, 7 Closed, 8 Canceled. Resolving needs a close code and close notes.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr

from services.risk.itsm.base import (
    FindingView,
    PermanentError,
    RemoteState,
    RemoteTicket,
    call,
    json_body,
)
from shared.events import FindingStatus

SYSTEM = "servicenow"
TABLE = "/api/now/table/incident"

# (impact, urgency) per finding severity; ServiceNow derives the priority from the pair.
IMPACT_URGENCY = {"critical": ("1", "1"), "high": ("1", "2"), "medium": ("2", "2"), "low": ("3", "3")}

# Incident state and close code that each finding status is sent as.
OUTBOUND_STATE: dict[FindingStatus, tuple[str, str | None]] = {
    FindingStatus.OPEN: ("1", None),
    FindingStatus.ACKNOWLEDGED: ("2", None),
    FindingStatus.IN_PROGRESS: ("2", None),
    FindingStatus.RESOLVED: ("6", "Solved (Permanently)"),
    FindingStatus.ACCEPTED_RISK: ("6", "Not Solved (Too Costly)"),
    FindingStatus.FALSE_POSITIVE: ("8", None),
}

# Finding status that an incident state means when someone changes it in ServiceNow.
INBOUND_STATUS = {
    "2": FindingStatus.IN_PROGRESS,
    "3": FindingStatus.IN_PROGRESS,
    "6": FindingStatus.RESOLVED,
    "7": FindingStatus.RESOLVED,
    "8": FindingStatus.FALSE_POSITIVE,
}
ACCEPTED_CLOSE_CODES = frozenset({"Not Solved (Too Costly)"})


class ServiceNowConnector:
    system = SYSTEM

    def __init__(
        self,
        base_url: str,
        user: str,
        password: SecretStr,
        *,
        timeout_s: float,
        assignment_group: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url
        self.assignment_group = assignment_group
        self.client = httpx.AsyncClient(
            base_url=base_url,
            auth=httpx.BasicAuth(user, password.get_secret_value()),
            timeout=timeout_s,
            headers={"Accept": "application/json"},
            transport=transport,
        )

    async def close(self) -> None:
        await self.client.aclose()

    def _ticket(self, record: dict[str, Any]) -> RemoteTicket:
        try:
            sys_id, number = record["sys_id"], record["number"]
        except (KeyError, TypeError):
            raise PermanentError(f"servicenow: incident record without sys_id or number: {record!r:.300}") from None
        url = f"{self.base_url}/nav_to.do?uri=incident.do%3Fsys_id%3D{sys_id}"
        return RemoteTicket(external_id=sys_id, key=number, url=url, state=record.get("state"))

    async def find(self, finding: FindingView) -> RemoteTicket | None:
        response = await call(
            self.client,
            SYSTEM,
            "GET",
            TABLE,
            params={
                "sysparm_query": f"correlation_id={finding.correlation}",
                "sysparm_limit": "1",
                "sysparm_fields": "sys_id,number,state",
            },
        )
        records = json_body(response, SYSTEM, "incident query").get("result")
        if not isinstance(records, list):
            raise PermanentError(f"servicenow: incident query returned no result list: {response.text[:300]}")
        return self._ticket(records[0]) if records else None

    async def create(self, finding: FindingView) -> RemoteTicket:
        impact, urgency = IMPACT_URGENCY[finding.severity]
        body: dict[str, str] = {
            "short_description": finding.title[:160],
            "description": finding.description(),
            "impact": impact,
            "urgency": urgency,
            "category": "inquiry",
            "correlation_id": finding.correlation,
            "correlation_display": "aifinops",
        }
        if self.assignment_group:
            body["assignment_group"] = self.assignment_group
        response = await call(self.client, SYSTEM, "POST", TABLE, json=body)
        return self._ticket(json_body(response, SYSTEM, "incident create").get("result") or {})

    async def update(self, ticket: Any, finding: FindingView) -> str | None:
        state, close_code = OUTBOUND_STATE[finding.status]
        impact, urgency = IMPACT_URGENCY[finding.severity]
        body: dict[str, str] = {"work_notes": finding.update_note(), "impact": impact, "urgency": urgency}
        if ticket.synced_status != finding.status.value:
            body["state"] = state
            if close_code is not None or state == "8":
                body["close_code"] = close_code or "Not Solved (Not Reproducible)"
                body["close_notes"] = finding.status_note or f"Finding marked {finding.status.value} in aifinops."
        response = await call(self.client, SYSTEM, "PATCH", f"{TABLE}/{ticket.external_id}", json=body)
        record = json_body(response, SYSTEM, "incident update").get("result") or {}
        return record.get("state") if isinstance(record, dict) else None

    async def read_state(self, ticket: Any) -> RemoteState | None:
        response = await call(
            self.client,
            SYSTEM,
            "GET",
            f"{TABLE}/{ticket.external_id}",
            params={"sysparm_fields": "state,close_code,sys_updated_by"},
        )
        record = json_body(response, SYSTEM, "incident read").get("result")
        if not isinstance(record, dict) or "state" not in record:
            raise PermanentError(f"servicenow: incident {ticket.external_key} read without a state")
        status = INBOUND_STATUS.get(record["state"])
        if status is FindingStatus.RESOLVED and record.get("close_code") in ACCEPTED_CLOSE_CODES:
            status = FindingStatus.ACCEPTED_RISK
        changed_by = f"servicenow:{record.get('sys_updated_by') or 'unknown'}"
        return RemoteState(state=str(record["state"]), status=status, changed_by=changed_by)
