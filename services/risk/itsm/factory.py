"""Build the ITSM connectors that the environment configures."""

from __future__ import annotations

from services.risk.itsm.base import Connector
from services.risk.itsm.jira import JiraConnector
from services.risk.itsm.servicenow import ServiceNowConnector
from services.risk.itsm.webhook import WebhookConnector
from services.risk.settings import RiskSettings


class ItsmConfigError(ValueError):
    """An ITSM system is half configured; the message names the missing variable."""


def build_connectors(settings: RiskSettings) -> list[Connector]:
    """Return a connector for every system whose URL is set; raise ItsmConfigError for missing credentials."""
    connectors: list[Connector] = []
    if settings.servicenow_url:
        if not settings.servicenow_user or settings.servicenow_password is None:
            raise ItsmConfigError("RISK_SERVICENOW_URL is set: set RISK_SERVICENOW_USER and RISK_SERVICENOW_PASSWORD")
        connectors.append(
            ServiceNowConnector(
                settings.servicenow_url,
                settings.servicenow_user,
                settings.servicenow_password,
                timeout_s=settings.itsm_timeout_s,
                assignment_group=settings.servicenow_assignment_group,
            )
        )
    if settings.jira_url:
        if not settings.jira_email or settings.jira_api_token is None:
            raise ItsmConfigError("RISK_JIRA_URL is set: set RISK_JIRA_EMAIL and RISK_JIRA_API_TOKEN")
        connectors.append(
            JiraConnector(
                settings.jira_url,
                settings.jira_email,
                settings.jira_api_token,
                project_key=settings.jira_project_key,
                issue_type=settings.jira_issue_type,
                timeout_s=settings.itsm_timeout_s,
            )
        )
    if settings.webhook_url:
        if settings.webhook_secret is None:
            raise ItsmConfigError("RISK_WEBHOOK_URL is set: set RISK_WEBHOOK_SECRET to sign the deliveries")
        connectors.append(
            WebhookConnector(settings.webhook_url, settings.webhook_secret, timeout_s=settings.itsm_timeout_s)
        )
    return connectors
