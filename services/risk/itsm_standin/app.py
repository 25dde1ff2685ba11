"""The stand-in's HTTP app: ServiceNow and Jira routes behind basic auth, a signed webhook receiver, and control.

Every API request passes through the fault plan first (see ``faults``) and is written to the request log.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.risk.itsm.signing import DELIVERY_HEADER, SIGNATURE_HEADER, SignatureError, verify
from services.risk.itsm_standin.faults import Fault, FaultPlan
from services.risk.itsm_standin.jira import API, JiraIssues
from services.risk.itsm_standin.jira import errors as jira_errors
from services.risk.itsm_standin.servicenow import ServiceNowTable, failure
from services.risk.itsm_standin.state import StandinState

Handler = Callable[[Request, str], Awaitable[Response]]


@dataclass(frozen=True)
class Credentials:
    servicenow_user: str
    servicenow_password: str
    jira_email: str
    jira_token: str
    webhook_secret: str
    # Further accounts, user to password, that act as ServiceNow agents or Jira users changing tickets by hand.
    agents: dict[str, str] = field(default_factory=dict)


def _basic_user(request: Request, accounts: dict[str, str]) -> str | None:
    """Return the user of a valid basic-auth header, or None."""
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        given_user, _, given_password = base64.b64decode(encoded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    expected = accounts.get(given_user)
    if expected is None or not hmac.compare_digest(given_password, expected):
        return None
    return given_user


def build_app(state: StandinState, base_url: str, credentials: Credentials, projects: dict[str, str]) -> Starlette:
    table = ServiceNowTable(state, base_url)
    jira = JiraIssues(state, base_url, projects)
    faults = FaultPlan()
    requests: deque[dict[str, Any]] = deque(maxlen=5000)

    servicenow_accounts = {credentials.servicenow_user: credentials.servicenow_password, **credentials.agents}
    jira_accounts = {credentials.jira_email: credentials.jira_token, **credentials.agents}

    def servicenow(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def guarded(request: Request) -> Response:
            user = _basic_user(request, servicenow_accounts)
            if user is None:
                return failure(401, "User Not Authenticated", "Required to provide Auth information")
            return await handler(request, user)

        return _with_faults(guarded, faults, requests)

    def jira_api(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def guarded(request: Request) -> Response:
            user = _basic_user(request, jira_accounts)
            if user is None:
                return jira_errors(
                    401, ["You are not authenticated. Authentication required to perform this operation."]
                )
            return await handler(request, user)

        return _with_faults(guarded, faults, requests)

    async def incidents(request: Request, user: str) -> Response:
        if request.method == "POST":
            return await table.create(request, user)
        return table.list(request)

    async def incident(request: Request, user: str) -> Response:
        sys_id = request.path_params["sys_id"]
        if request.method == "GET":
            return table.read(request, sys_id)
        return await table.update(request, sys_id, user)

    async def create_issue(request: Request, _user: str) -> Response:
        return await jira.create(request)

    async def read_issue(request: Request, _user: str) -> Response:
        return jira.read(request, request.path_params["key"])

    async def comment(request: Request, user: str) -> Response:
        return await jira.comment(request, request.path_params["key"], user)

    async def transitions(request: Request, _user: str) -> Response:
        if request.method == "GET":
            return jira.transitions(request.path_params["key"])
        return await jira.transition(request, request.path_params["key"])

    async def search(request: Request, _user: str) -> Response:
        return jira.search(request)

    async def webhook(request: Request, _user: str) -> Response:
        body = await request.body()
        try:
            verify(credentials.webhook_secret, body, request.headers.get(SIGNATURE_HEADER))
        except SignatureError as error:
            return JSONResponse({"error": str(error)}, status_code=401)
        delivery = request.headers.get(DELIVERY_HEADER, "")
        payload = json.loads(body)
        finding_id = str(payload.get("finding", {}).get("finding_id", ""))
        if delivery not in state.deliveries:
            state.deliveries[delivery] = payload
            if finding_id not in state.hook_tickets:
                state.hook_tickets[finding_id] = f"HOOK-{len(state.hook_tickets) + 1}"
            state.save()
        return JSONResponse({"ticket": state.hook_tickets.get(finding_id, ""), "delivery_id": delivery})

    async def webhook_route(request: Request) -> Response:
        return await _with_faults(lambda r: webhook(r, ""), faults, requests)(request)

    async def control_state(_request: Request) -> JSONResponse:
        correlations = Counter(record["correlation_id"] for record in state.incidents.values())
        labels = Counter(
            label
            for issue in state.issues.values()
            for label in issue["fields"].get("labels", [])
            if label.startswith("aifinops-")
        )
        return JSONResponse(
            {
                "incidents": [
                    {
                        "number": r["number"],
                        "sys_id": r["sys_id"],
                        "correlation_id": r["correlation_id"],
                        "state": r["state"],
                        "short_description": r["short_description"],
                        "work_notes": len(state.journal.get(r["sys_id"], [])),
                    }
                    for r in state.incidents.values()
                ],
                "issues": [
                    {
                        "key": issue["key"],
                        "labels": issue["fields"].get("labels", []),
                        "status": issue["fields"]["status"]["name"],
                        "resolution": (issue["fields"].get("resolution") or {}).get("name"),
                        "comments": len(state.comments.get(issue["key"], [])),
                    }
                    for issue in state.issues.values()
                ],
                "deliveries": len(state.deliveries),
                "webhook_tickets": len(state.hook_tickets),
                "duplicate_incidents": sum(count - 1 for count in correlations.values() if count > 1),
                "duplicate_issues": sum(count - 1 for count in labels.values() if count > 1),
            }
        )

    async def control_faults(request: Request) -> JSONResponse:
        if request.method == "DELETE":
            faults.clear()
            return JSONResponse({"faults": 0})
        try:
            documents = json.loads(await request.body())
            for document in documents if isinstance(documents, list) else [documents]:
                faults.add(Fault.parse(document))
        except (ValueError, KeyError, TypeError) as error:
            return JSONResponse({"error": f"invalid fault: {error}"}, status_code=422)
        return JSONResponse({"faults": len(faults.faults)})

    async def control_requests(request: Request) -> JSONResponse:
        if request.method == "DELETE":
            requests.clear()
        return JSONResponse({"requests": list(requests)})

    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/api/now/table/incident", servicenow(incidents), methods=["GET", "POST"]),
            Route("/api/now/table/incident/{sys_id}", servicenow(incident), methods=["GET", "PATCH", "PUT"]),
            Route(f"{API}/issue", jira_api(create_issue), methods=["POST"]),
            Route(f"{API}/issue/{{key}}", jira_api(read_issue), methods=["GET"]),
            Route(f"{API}/issue/{{key}}/comment", jira_api(comment), methods=["POST"]),
            Route(f"{API}/issue/{{key}}/transitions", jira_api(transitions), methods=["GET", "POST"]),
            Route(f"{API}/search/jql", jira_api(search), methods=["GET"]),
            Route("/webhook/findings", webhook_route, methods=["POST"]),
            Route("/_standin/state", control_state, methods=["GET"]),
            Route("/_standin/faults", control_faults, methods=["POST", "DELETE"]),
            Route("/_standin/requests", control_requests, methods=["GET", "DELETE"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def _with_faults(
    handler: Callable[[Request], Awaitable[Response]], faults: FaultPlan, requests: deque[dict[str, Any]]
) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        fault = faults.take(request.method, request.url.path)
        entry = {"method": request.method, "path": request.url.path, "fault": fault is not None}
        requests.append(entry)
        if fault is not None and fault.phase == "before":
            await asyncio.sleep(fault.delay_s)
            if fault.status is not None:
                entry["status"] = fault.status
                return _fault_response(fault)
        response = await handler(request)
        if fault is not None and fault.phase == "after":
            await asyncio.sleep(fault.delay_s)
            if fault.status is not None:
                entry["status"] = fault.status
                return _fault_response(fault)
        entry["status"] = response.status_code
        return response

    return run


def _fault_response(fault: Fault) -> Response:
    headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
    assert fault.status is not None
    return JSONResponse({"error": f"injected fault {fault.status}"}, status_code=fault.status, headers=headers)
