"""Jira connector: one issue per finding through the Jira Cloud REST API v3.

Rich text fields (description, comment bodies) are Atlassian Document Format documents. An issue carries the
labels ``aifinops`` and ``aifinops-<finding id>``; a JQL search on the second label finds the issue that an
earlier, unanswered create may already have opened. Status changes go through the issue's transitions, which
each workflow names differently, so the connector picks the transition whose target status is in the right
status category (``new``, ``indeterminate`` or ``done``).
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr

from services.risk.itsm.base import FindingView, PermanentError, RemoteState, RemoteTicket, call, json_body
from shared.events import FindingStatus

SYSTEM = "jira"
API = "/rest/api/3"

PRIORITY = {"critical": "Highest", "high": "High", "medium": "Medium", "low": "Low"}

# Status category and resolution that each finding status is sent as.
OUTBOUND: dict[FindingStatus, tuple[str, str | None]] = {
    FindingStatus.OPEN: ("new", None),
    FindingStatus.ACKNOWLEDGED: ("new", None),
    FindingStatus.IN_PROGRESS: ("indeterminate", None),
    FindingStatus.RESOLVED: ("done", "Done"),
    FindingStatus.ACCEPTED_RISK: ("done", "Won't Do"),
    FindingStatus.FALSE_POSITIVE: ("done", "Cannot Reproduce"),
}
INBOUND_RESOLUTIONS = {
    "Won't Do": FindingStatus.ACCEPTED_RISK,
    "Won't Fix": FindingStatus.ACCEPTED_RISK,
    "Cannot Reproduce": FindingStatus.FALSE_POSITIVE,
    "Duplicate": FindingStatus.FALSE_POSITIVE,
}


def adf(text: str) -> dict[str, Any]:
    """Wrap plain text in an Atlassian Document Format document, one paragraph per line."""
    paragraphs = [
        {"type": "paragraph", "content": [{"type": "text", "text": line}]} if line else {"type": "paragraph"}
        for line in text.splitlines()
    ]
    return {"type": "doc", "version": 1, "content": paragraphs}


class JiraConnector:
    system = SYSTEM

    def __init__(
        self,
        base_url: str,
        email: str,
        api_token: SecretStr,
        *,
        project_key: str,
        issue_type: str,
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url
        self.project_key = project_key
        self.issue_type = issue_type
        self.client = httpx.AsyncClient(
            base_url=base_url,
            auth=httpx.BasicAuth(email, api_token.get_secret_value()),
            timeout=timeout_s,
            headers={"Accept": "application/json"},
            transport=transport,
        )

    async def close(self) -> None:
        await self.client.aclose()

    @staticmethod
    def label(finding: FindingView) -> str:
        return f"aifinops-{finding.finding_id}"

    def _ticket(self, issue: dict[str, Any], state: str | None) -> RemoteTicket:
        try:
            issue_id, key = str(issue["id"]), issue["key"]
        except (KeyError, TypeError):
            raise PermanentError(f"jira: issue without id or key: {issue!r:.300}") from None
        return RemoteTicket(external_id=issue_id, key=key, url=f"{self.base_url}/browse/{key}", state=state)

    async def find(self, finding: FindingView) -> RemoteTicket | None:
        response = await call(
            self.client,
            SYSTEM,
            "GET",
            f"{API}/search/jql",
            params={"jql": f'labels = "{self.label(finding)}"', "fields": "status", "maxResults": "1"},
        )
        issues = json_body(response, SYSTEM, "issue search").get("issues")
        if not isinstance(issues, list):
            raise PermanentError(f"jira: issue search returned no issues list: {response.text[:300]}")
        if not issues:
            return None
        status = (issues[0].get("fields") or {}).get("status") or {}
        return self._ticket(issues[0], status.get("name"))

    async def create(self, finding: FindingView) -> RemoteTicket:
        fields = {
            "project": {"key": self.project_key},
            "issuetype": {"name": self.issue_type},
            "summary": finding.title[:255],
            "description": adf(finding.description()),
            "labels": ["aifinops", self.label(finding)],
            "priority": {"name": PRIORITY[finding.severity]},
        }
        response = await call(self.client, SYSTEM, "POST", f"{API}/issue", json={"fields": fields})
        return self._ticket(json_body(response, SYSTEM, "issue create"), None)

    async def update(self, ticket: Any, finding: FindingView) -> str | None:
        await call(
            self.client,
            SYSTEM,
            "POST",
            f"{API}/issue/{ticket.external_key}/comment",
            json={"body": adf(finding.update_note())},
        )
        if ticket.synced_status == finding.status.value:
            return ticket.remote_state  # type: ignore[no-any-return]
        category, resolution = OUTBOUND[finding.status]
        response = await call(self.client, SYSTEM, "GET", f"{API}/issue/{ticket.external_key}/transitions")
        transitions = json_body(response, SYSTEM, "transitions").get("transitions") or []
        chosen = next(
            (t for t in transitions if ((t.get("to") or {}).get("statusCategory") or {}).get("key") == category),
            None,
        )
        if chosen is None:
            current = await self.read_state(ticket)
            if current is not None and _category_of(current.state) == category:
                return current.state
            names = ", ".join(t.get("name", "?") for t in transitions) or "none"
            raise PermanentError(
                f"jira: issue {ticket.external_key} has no transition to a {category} status ({names})"
            )
        body: dict[str, Any] = {"transition": {"id": str(chosen["id"])}}
        if resolution is not None:
            body["fields"] = {"resolution": {"name": resolution}}
        await call(self.client, SYSTEM, "POST", f"{API}/issue/{ticket.external_key}/transitions", json=body)
        return _state(chosen["to"].get("name", "?"), category, resolution)

    async def read_state(self, ticket: Any) -> RemoteState | None:
        response = await call(
            self.client, SYSTEM, "GET", f"{API}/issue/{ticket.external_key}", params={"fields": "status,resolution"}
        )
        fields = json_body(response, SYSTEM, "issue read").get("fields") or {}
        status = fields.get("status") or {}
        category = (status.get("statusCategory") or {}).get("key")
        if not category:
            raise PermanentError(f"jira: issue {ticket.external_key} read without a status category")
        resolution = (fields.get("resolution") or {}).get("name")
        finding_status: FindingStatus | None
        if category == "done":
            finding_status = INBOUND_RESOLUTIONS.get(resolution or "", FindingStatus.RESOLVED)
        elif category == "indeterminate":
            finding_status = FindingStatus.IN_PROGRESS
        else:
            finding_status = None
        state = _state(status.get("name", "?"), category, resolution)
        return RemoteState(state=state, status=finding_status, changed_by="jira")


def _state(name: str, category: str, resolution: str | None) -> str:
    """Write a Jira status as one comparable string: name, category and resolution."""
    return f"{name}|{category}" + (f"|{resolution}" if resolution else "")


def _category_of(state: str) -> str:
    parts = state.split("|")
    return parts[1] if len(parts) > 1 else ""
