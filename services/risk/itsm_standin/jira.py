"""Jira Cloud REST v3 issues, comments, transitions and JQL search, as far as the connector uses them.

The workflow is Jira's simplest: To Do (category ``new``), In Progress (``indeterminate``) and Done (``done``),
with a transition into each from every other status. Rich text must be an Atlassian Document Format document.
JQL understands ``labels = "..."`` and ``project = KEY`` clauses joined with AND.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.risk.itsm_standin.state import StandinState

API = "/rest/api/3"
STATUSES = {
    "11": {"name": "To Do", "statusCategory": {"key": "new", "name": "To Do"}},
    "21": {"name": "In Progress", "statusCategory": {"key": "indeterminate", "name": "In Progress"}},
    "31": {"name": "Done", "statusCategory": {"key": "done", "name": "Done"}},
}
RESOLUTIONS = ("Done", "Won't Do", "Duplicate", "Cannot Reproduce")
CLAUSE = re.compile(r'^\s*(labels|project)\s*=\s*"?([^"]+?)"?\s*$', re.IGNORECASE)
NOT_FOUND = "Issue does not exist or you do not have permission to see it."


def errors(status: int, messages: list[str] | None = None, fields: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"errorMessages": messages or [], "errors": fields or {}}, status_code=status)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def is_document(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") == "doc" and value.get("version") == 1


class JiraIssues:
    def __init__(self, state: StandinState, base_url: str, projects: dict[str, str]) -> None:
        self.state = state
        self.base_url = base_url
        self.projects = projects  # key -> id

    def _project_key(self, project: Any) -> str | None:
        if not isinstance(project, dict):
            return None
        if project.get("key") in self.projects:
            return str(project["key"])
        ids = {value: key for key, value in self.projects.items()}
        return ids.get(str(project.get("id")))

    def _issue(self, key: str) -> dict[str, Any] | None:
        if key in self.state.issues:
            return self.state.issues[key]
        return next((issue for issue in self.state.issues.values() if issue["id"] == key), None)

    def _view(self, issue: dict[str, Any], fields: str | None) -> dict[str, Any]:
        wanted = [name.strip() for name in fields.split(",")] if fields else None
        shown = {name: value for name, value in issue["fields"].items() if wanted is None or name in wanted}
        return {"id": issue["id"], "key": issue["key"], "self": issue["self"], "fields": shown}

    async def create(self, request: Request) -> JSONResponse:
        body = await _json_object(request)
        if body is None or not isinstance(body.get("fields"), dict):
            return errors(400, ["The request body must be a JSON object with a fields object."])

        fields = body["fields"]
        problems: dict[str, str] = {}
        project = self._project_key(fields.get("project"))
        if project is None:
            problems["project"] = "valid project is required"
        if not isinstance(fields.get("summary"), str) or not fields["summary"].strip():
            problems["summary"] = "You must specify a summary of the issue."
        issue_type = fields.get("issuetype")
        if not isinstance(issue_type, dict) or not (issue_type.get("name") or issue_type.get("id")):
            problems["issuetype"] = "Specify an issue type"
        for name in ("description", "environment"):
            if name in fields and not is_document(fields[name]):
                problems[name] = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
        labels = fields.get("labels", [])
        if not isinstance(labels, list) or not all(isinstance(x, str) and x and " " not in x for x in labels):
            problems["labels"] = "Labels must be strings without spaces."
        if problems:
            return errors(400, fields=problems)

        assert project is not None
        issue_id = str(self.state.next_issue)
        self.state.next_issue += 1
        key = (
            f"{project}-{sum(1 for issue in self.state.issues.values() if issue['key'].startswith(project + '-')) + 1}"
        )
        now = _now()
        stored = {
            **fields,
            "project": {"key": project, "id": self.projects[project]},
            "status": STATUSES["11"],
            "resolution": None,
            "labels": labels,
            "created": now,
            "updated": now,
        }
        issue = {"id": issue_id, "key": key, "self": f"{self.base_url}{API}/issue/{issue_id}", "fields": stored}
        self.state.issues[key] = issue
        self.state.save()

        answer: dict[str, Any] = {"id": issue_id, "key": key, "self": issue["self"]}
        if "transition" in body:
            answer["transition"] = {"status": 200, "errorCollection": {"errorMessages": [], "errors": {}}}
        return JSONResponse(answer, status_code=201)

    def read(self, request: Request, key: str) -> JSONResponse:
        issue = self._issue(key)
        if issue is None:
            return errors(404, [NOT_FOUND])
        return JSONResponse(self._view(issue, request.query_params.get("fields")))

    async def comment(self, request: Request, key: str, user: str) -> JSONResponse:
        issue = self._issue(key)
        if issue is None:
            return errors(404, [NOT_FOUND])
        body = await _json_object(request)
        if body is None or not is_document(body.get("body")):
            return errors(400, fields={"comment": "Comment body must be an Atlassian Document."})
        comments = self.state.comments.setdefault(issue["key"], [])
        comment_id = str(10000 + sum(len(items) for items in self.state.comments.values()))
        created = {
            "id": comment_id,
            "self": f"{issue['self']}/comment/{comment_id}",
            "author": {"emailAddress": user},
            "body": body["body"],
            "created": _now(),
        }
        comments.append(created)
        issue["fields"]["updated"] = created["created"]
        self.state.save()
        return JSONResponse(created, status_code=201)

    def transitions(self, key: str) -> JSONResponse:
        issue = self._issue(key)
        if issue is None:
            return errors(404, [NOT_FOUND])
        current = issue["fields"]["status"]["name"]
        available = [
            {"id": transition_id, "name": status["name"], "to": status, "hasScreen": False}
            for transition_id, status in STATUSES.items()
            if status["name"] != current
        ]
        return JSONResponse({"expand": "transitions", "transitions": available})

    async def transition(self, request: Request, key: str) -> Response:
        issue = self._issue(key)
        if issue is None:
            return errors(404, [NOT_FOUND])
        body = await _json_object(request)
        transition_id = str(((body or {}).get("transition") or {}).get("id", ""))
        target = STATUSES.get(transition_id)
        if target is None or target["name"] == issue["fields"]["status"]["name"]:
            return errors(400, [f"Transition id '{transition_id}' is not valid for this issue."])
        resolution = (((body or {}).get("fields") or {}).get("resolution") or {}).get("name")
        if resolution is not None and resolution not in RESOLUTIONS:
            return errors(400, fields={"resolution": f"Resolution '{resolution}' does not exist."})
        done = target["statusCategory"]["key"] == "done"
        issue["fields"]["status"] = target
        issue["fields"]["resolution"] = {"name": resolution or "Done"} if done else None
        issue["fields"]["updated"] = _now()
        self.state.save()
        return Response(status_code=204)

    def search(self, request: Request) -> JSONResponse:
        jql = request.query_params.get("jql", "")
        labels: list[str] = []
        projects: list[str] = []
        for clause in filter(None, (part.strip() for part in re.split(r"\s+AND\s+", jql, flags=re.IGNORECASE))):
            match = CLAUSE.match(clause)
            if match is None:
                return errors(400, [f'The stand-in understands only labels = "..." and project = KEY, got {clause!r}'])
            (labels if match.group(1).lower() == "labels" else projects).append(match.group(2))
        found = [
            issue
            for issue in self.state.issues.values()
            if all(label in issue["fields"].get("labels", []) for label in labels)
            and all(issue["fields"]["project"]["key"] == project for project in projects)
        ]
        limit = int(request.query_params.get("maxResults", "50"))
        fields = request.query_params.get("fields")
        return JSONResponse({"issues": [self._view(issue, fields) for issue in found[:limit]], "isLast": True})


async def _json_object(request: Request) -> dict[str, Any] | None:
    try:
        body = json.loads(await request.body())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
