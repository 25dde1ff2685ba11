from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, SecretStr, field_validator

from shared.events import Money, Severity
from shared.settings import ServiceSettings


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class RiskSettings(ServiceSettings):
    budgets_file: Path | None = Field(
        default=None,
        validation_alias=_env("RISK_BUDGETS_FILE"),
        description="YAML budgets; without it no budget findings are raised.",
    )
    policy_file: Path | None = Field(
        default=None,
        validation_alias=_env("RISK_POLICY_FILE"),
        description="YAML policy of approved AI providers, models and regions; without it no policy or "
        "unlisted-vendor findings are raised.",
    )
    contracts_file: Path | None = Field(
        default=None,
        validation_alias=_env("RISK_CONTRACTS_FILE"),
        description="YAML spend commitments and seat licences; without it no contract findings are raised.",
    )
    time_zone: str = Field(
        default="UTC",
        validation_alias=_env("RISK_TIME_ZONE"),
        description="IANA time zone of budget periods, anomaly days and exception expiry dates.",
    )
    tenant_time_zones: dict[str, str] = Field(
        default_factory=dict,
        validation_alias=_env("RISK_TENANT_TIME_ZONES"),
        description='Time zone per tenant, as JSON such as {"acme": "Europe/Berlin"}; others use RISK_TIME_ZONE.',
    )
    anomaly_window_days: int = Field(
        default=28,
        ge=7,
        le=366,
        validation_alias=_env("RISK_ANOMALY_WINDOW_DAYS"),
        description="Days before the checked day that form the baseline.",
    )
    anomaly_min_history_days: int = Field(
        default=7,
        ge=3,
        validation_alias=_env("RISK_ANOMALY_MIN_HISTORY_DAYS"),
        description="Days a series must have existed before its spend is checked.",
    )
    anomaly_threshold: Decimal = Field(
        default=Decimal("3.5"),
        gt=0,
        validation_alias=_env("RISK_ANOMALY_THRESHOLD"),
        description="Robust z-score (deviations from the median in units of 1.4826 × MAD) above which a day fires.",
    )
    anomaly_min_daily_spend: list[Money] = Field(
        default_factory=lambda: [Money(amount=Decimal("10.00"), currency="USD")],
        validation_alias=_env("RISK_ANOMALY_MIN_DAILY_SPEND"),
        description="Daily spend below which no anomaly fires, per currency, as JSON such as "
        '[{"amount": "10.00", "currency": "USD"}]; spend in other currencies is not checked.',
    )
    budget_refresh_interval_s: float = Field(
        default=5.0,
        gt=0,
        validation_alias=_env("RISK_BUDGET_REFRESH_INTERVAL_S"),
        description="Seconds between two reads of the budgets set over the ops API, for the other risk replicas.",
    )
    http_port: int = Field(
        default=8085,
        ge=0,
        le=65535,
        validation_alias=_env("RISK_HTTP_PORT"),
        description="Port of the inbound ITSM webhook (status changes from a ticket system).",
    )

    itsm_min_severity: Severity = Field(
        default=Severity.MEDIUM,
        validation_alias=_env("RISK_ITSM_MIN_SEVERITY"),
        description="Findings at this severity or above get a ticket; requested savings always do.",
    )
    itsm_timeout_s: float = Field(
        default=10.0,
        gt=0,
        validation_alias=_env("RISK_ITSM_TIMEOUT_S"),
        description="Seconds an ITSM request may take before it counts as failed and is retried.",
    )
    itsm_retry_base_s: float = Field(
        default=2.0,
        gt=0,
        validation_alias=_env("RISK_ITSM_RETRY_BASE_S"),
        description="First retry delay in seconds; it doubles with each failure up to RISK_ITSM_RETRY_MAX_S.",
    )
    itsm_retry_max_s: float = Field(
        default=300.0,
        gt=0,
        validation_alias=_env("RISK_ITSM_RETRY_MAX_S"),
        description="Maximum retry delay in seconds, also the cap on a Retry-After header.",
    )
    itsm_interval_s: float = Field(
        default=1.0,
        gt=0,
        validation_alias=_env("RISK_ITSM_INTERVAL_S"),
        description="Seconds between two passes over the ticket outbox.",
    )
    itsm_poll_interval_s: float = Field(
        default=30.0,
        gt=0,
        validation_alias=_env("RISK_ITSM_POLL_INTERVAL_S"),
        description="Seconds between two reads of ticket states, which flow back to the findings.",
    )
    renewal_check_interval_s: float = Field(
        default=3600.0,
        gt=0,
        validation_alias=_env("RISK_RENEWAL_CHECK_INTERVAL_S"),
        description="Seconds between two checks of contract renewal notice windows.",
    )

    servicenow_url: str | None = Field(
        default=None,
        validation_alias=_env("RISK_SERVICENOW_URL"),
        description="Base URL of the ServiceNow instance, such as https://acme.service-now.com.",
    )
    servicenow_user: str | None = Field(default=None, validation_alias=_env("RISK_SERVICENOW_USER"))
    servicenow_password: SecretStr | None = Field(default=None, validation_alias=_env("RISK_SERVICENOW_PASSWORD"))
    servicenow_assignment_group: str | None = Field(
        default=None,
        validation_alias=_env("RISK_SERVICENOW_ASSIGNMENT_GROUP"),
        description="sys_id of the group that new incidents are assigned to.",
    )
    jira_url: str | None = Field(
        default=None,
        validation_alias=_env("RISK_JIRA_URL"),
        description="Base URL of the Jira site, such as https://acme.atlassian.net.",
    )
    jira_email: str | None = Field(default=None, validation_alias=_env("RISK_JIRA_EMAIL"))
    jira_api_token: SecretStr | None = Field(default=None, validation_alias=_env("RISK_JIRA_API_TOKEN"))
    jira_project_key: str = Field(default="FINOPS", validation_alias=_env("RISK_JIRA_PROJECT_KEY"))
    jira_issue_type: str = Field(default="Task", validation_alias=_env("RISK_JIRA_ISSUE_TYPE"))
    webhook_url: str | None = Field(
        default=None,
        validation_alias=_env("RISK_WEBHOOK_URL"),
        description="URL that receives every finding as signed JSON.",
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        validation_alias=_env("RISK_WEBHOOK_SECRET"),
        description="Shared secret of the HMAC-SHA256 signatures, outbound and inbound.",
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _check_zone(value, "RISK_TIME_ZONE")

    @field_validator("tenant_time_zones")
    @classmethod
    def _known_zones(cls, value: dict[str, str]) -> dict[str, str]:
        for tenant, zone in value.items():
            _check_zone(zone, f"RISK_TENANT_TIME_ZONES[{tenant}]")
        return value

    @field_validator("servicenow_url", "jira_url", "webhook_url")
    @classmethod
    def _no_credentials_in_url(cls, value: str | None) -> str | None:
        if value and "@" in value.split("//", 1)[-1].split("/", 1)[0]:
            raise ValueError("must not contain a user or password; set them in their own variables")
        return value.rstrip("/") if value else value

    def zone_for(self, tenant: str) -> ZoneInfo:
        return ZoneInfo(self.tenant_time_zones.get(tenant, self.time_zone))


def _check_zone(value: str, name: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name}: unknown time zone {value!r}; use an IANA name such as Europe/Berlin") from None
    return value
