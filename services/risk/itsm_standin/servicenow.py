"""The ServiceNow Table API for the incident table, as far as the connector uses it.

Records have every field of the documented incident record, as strings. The encoded query of a list request
understands ``field=value`` terms joined with ``^``. A move to state 6 (Resolved) needs ``close_code`` and
``close_notes``, as the default data policy of an instance demands, and is rejected with 403 without them.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from services.risk.itsm_standin.state import StandinState

TEMPLATE_FILE = "servicenow_table_api_post_incident_response_docs.json"
REFERENCE_FIELDS = ("assignment_group", "opened_by", "caller_id", "assigned_to")
STATES = {"1", "2", "3", "6", "7", "8"}
# Priority from (impact, urgency), as ServiceNow's default priority lookup rules set it.
PRIORITY = {
    ("1", "1"): "1", ("1", "2"): "2", ("2", "1"): "2", ("1", "3"): "3", ("2", "2"): "3",
    ("3", "1"): "3", ("2", "3"): "4", ("3", "2"): "4", ("3", "3"): "5",
}  # fmt: skip


def _template() -> dict[str, Any]:
    text = resources.files("services.risk.itsm_standin.data").joinpath(TEMPLATE_FILE).read_text()
    record: dict[str, Any] = json.loads(text)["result"]
    return {name: ("" if isinstance(value, str) else value) for name, value in record.items()}


TEMPLATE = _template()


def failure(status: int, message: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "detail": detail}, "status": "failure"}, status_code=status)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


class ServiceNowTable:
    def __init__(self, state: StandinState, base_url: str) -> None:
        self.state = state
        self.base_url = base_url

    def _reference(self, table: str, value: str) -> dict[str, str]:
        return {"link": f"{self.base_url}/api/now/table/{table}/{value}", "value": value}

    def _view(self, record: dict[str, Any], fields: str | None) -> dict[str, Any]:
        if not fields:
            return record
        wanted = [name.strip() for name in fields.split(",") if name.strip()]
        return {name: record.get(name, "") for name in wanted}

    async def create(self, request: Request, user: str) -> JSONResponse:
        body = await _json_object(request)
        if body is None:
            return failure(400, "Exception while reading request", "The payload is not valid JSON")

        record = dict(TEMPLATE)
        for name, value in body.items():
            if name in TEMPLATE and not isinstance(TEMPLATE[name], dict):
                record[name] = str(value)

        now = _now()
        sys_id = uuid.uuid4().hex
        number = f"INC{self.state.next_incident:07d}"
        self.state.next_incident += 1
        impact, urgency = record["impact"] or "3", record["urgency"] or "3"
        record |= {
            "sys_id": sys_id,
            "number": number,
            "state": "1",
            "incident_state": "1",
            "impact": impact,
            "urgency": urgency,
            "priority": PRIORITY.get((impact, urgency), "5"),
            "severity": "3",
            "active": "true",
            "approval": "not requested",
            "upon_approval": "proceed",
            "upon_reject": "cancel",
            "notify": "1",
            "reopen_count": "0",
            "reassignment_count": "0",
            "child_incidents": "0",
            "escalation": "0",
            "knowledge": "false",
            "made_sla": "true",
            "sys_class_name": "incident",
            "sys_domain_path": "/",
            "sys_mod_count": "0",
            "sys_created_on": now,
            "sys_updated_on": now,
            "opened_at": now,
            "sys_created_by": user,
            "sys_updated_by": user,
            "contact_type": record["contact_type"] or "integration",
            "sys_domain": self._reference("sys_user_group", "global"),
            "opened_by": self._reference("sys_user", uuid.uuid5(uuid.NAMESPACE_DNS, user).hex),
        }
        group = body.get("assignment_group")
        record["assignment_group"] = self._reference("sys_user_group", str(group)) if group else ""

        self.state.incidents[sys_id] = record
        self.state.save()
        return JSONResponse(
            {"result": record},
            status_code=201,
            headers={"Location": f"{self.base_url}/api/now/table/incident/{sys_id}"},
        )

    def list(self, request: Request) -> JSONResponse:
        terms = [term for term in request.query_params.get("sysparm_query", "").split("^") if term]
        conditions: list[tuple[str, str]] = []
        for term in terms:
            if term.startswith("ORDERBY"):
                continue
            name, equals, value = term.partition("=")
            if not equals or not name.isidentifier():
                return failure(400, "Invalid query", f"the stand-in understands only field=value terms, got {term!r}")
            conditions.append((name, value))
        limit = int(request.query_params.get("sysparm_limit", "10000"))
        matches = [
            record
            for record in self.state.incidents.values()
            if all(_text(record.get(name)) == value for name, value in conditions)
        ]
        fields = request.query_params.get("sysparm_fields")
        return JSONResponse({"result": [self._view(record, fields) for record in matches[:limit]]})

    def read(self, request: Request, sys_id: str) -> JSONResponse:
        record = self.state.incidents.get(sys_id)
        if record is None:
            return failure(404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")
        return JSONResponse({"result": self._view(record, request.query_params.get("sysparm_fields"))})

    async def update(self, request: Request, sys_id: str, user: str) -> JSONResponse:
        record = self.state.incidents.get(sys_id)
        if record is None:
            return failure(404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")
        body = await _json_object(request)
        if body is None:
            return failure(400, "Exception while reading request", "The payload is not valid JSON")
        changes = {name: str(value) for name, value in body.items() if name in TEMPLATE}
        state = changes.get("state")
        if state is not None and state not in STATES:
            return failure(400, "Invalid state", f"state {state!r} is not a choice of incident.state")
        if state == "6":
            missing = [name for name in ("close_code", "close_notes") if not (changes.get(name) or record[name])]
            if missing:
                detail = f"Data Policy Exception: the following fields are mandatory: {', '.join(missing)}"
                return failure(403, "Operation Failed", detail)

        note = changes.pop("work_notes", "")
        now = _now()
        if note:
            self.state.journal.setdefault(sys_id, []).append({"at": now, "by": user, "note": note})
        record.update(changes)
        if state is not None:
            record["incident_state"] = state
            record["active"] = "false" if state in ("7", "8") else "true"
            if state == "6":
                record["resolved_at"], record["resolved_by"] = now, user
            if state in ("1", "2") and record["resolved_at"]:
                record["reopen_count"] = str(int(record["reopen_count"] or "0") + 1)
                record["resolved_at"] = record["resolved_by"] = ""
        if "impact" in changes or "urgency" in changes:
            record["priority"] = PRIORITY.get((record["impact"], record["urgency"]), record["priority"])

        record["sys_updated_on"], record["sys_updated_by"] = now, user
        record["sys_mod_count"] = str(int(record["sys_mod_count"]) + 1)
        self.state.save()
        return JSONResponse({"result": record})


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("value", ""))
    return "" if value is None else str(value)


async def _json_object(request: Request) -> dict[str, Any] | None:
    try:
        body = json.loads(await request.body())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
