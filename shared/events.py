"""Event contracts shared by every aifinops service.

Each event is a frozen pydantic model with a common envelope: a schema version,
an event id, a dotted event type, when the fact happened and when it was
produced (both UTC), the producing source, the tenant and a correlation id.
Events are past-tense facts; a consumer that sees an event id twice must treat
the second copy as already processed.

Money is always a ``Money`` (``Decimal`` amount plus ISO 4217 currency), and
usage quantities are exclusive buckets: a token counted as a cache read is not
also counted as uncached input, so summing buckets never counts twice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    field_validator,
    model_validator,
)

SCHEMA_VERSION = 1

NonEmptyStr = Annotated[str, StringConstraints(min_length=1, max_length=512)]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
# Multi-line text written for people, such as a recommendation's arithmetic, which often runs past 512 characters.
LongText = Annotated[str, StringConstraints(min_length=1, max_length=20000)]


def utc_now() -> datetime:
    return datetime.now(UTC)


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _finite(value: Decimal, field_name: str) -> Decimal:
    if not value.is_finite():
        raise ValueError(f"{field_name} must be a finite number, got {value}")
    return value


class FrozenModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Money(FrozenModel):
    """An exact amount of money in one currency."""

    amount: Decimal
    currency: CurrencyCode

    @field_validator("amount")
    @classmethod
    def _amount_is_finite(cls, value: Decimal) -> Decimal:
        return _finite(value, "amount")

    def __add__(self, other: Money) -> Money:
        if other.currency != self.currency:
            raise ValueError(f"cannot add {other.currency} to {self.currency}: convert first")
        return Money(amount=self.amount + other.amount, currency=self.currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(amount=Decimal(0), currency=currency)

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


class UsageBucket(StrEnum):
    """An exclusive, billable usage quantity; ``BUCKET_UNITS`` names its unit."""

    INPUT_UNCACHED_TOKENS = "input_uncached_tokens"
    CACHE_READ_TOKENS = "cache_read_tokens"
    CACHE_WRITE_TOKENS = "cache_write_tokens"  # the provider's default cache lifetime (5 minutes at Anthropic)
    CACHE_WRITE_1H_TOKENS = "cache_write_1h_tokens"
    OUTPUT_TOKENS = "output_tokens"  # output excluding reasoning
    REASONING_TOKENS = "reasoning_tokens"
    WEB_SEARCH_CALLS = "web_search_calls"
    IMAGES = "images"
    AUDIO_SECONDS = "audio_seconds"
    GPU_SECONDS = "gpu_seconds"
    SEATS = "seat_months"
    REQUESTS = "requests"  # billed per request, such as a per-call model fee
    AUDIO_INPUT_TOKENS = "audio_input_tokens"  # audio input, cached audio included (OpenAI reports no split)
    AUDIO_OUTPUT_TOKENS = "audio_output_tokens"
    CHARACTERS = "characters"  # text characters billed by text-to-speech


BUCKET_UNITS: dict[UsageBucket, str] = {
    UsageBucket.INPUT_UNCACHED_TOKENS: "tokens",
    UsageBucket.CACHE_READ_TOKENS: "tokens",
    UsageBucket.CACHE_WRITE_TOKENS: "tokens",
    UsageBucket.CACHE_WRITE_1H_TOKENS: "tokens",
    UsageBucket.OUTPUT_TOKENS: "tokens",
    UsageBucket.REASONING_TOKENS: "tokens",
    UsageBucket.WEB_SEARCH_CALLS: "calls",
    UsageBucket.IMAGES: "images",
    UsageBucket.AUDIO_SECONDS: "seconds",
    UsageBucket.GPU_SECONDS: "seconds",
    UsageBucket.SEATS: "seat-months",
    UsageBucket.REQUESTS: "requests",
    UsageBucket.AUDIO_INPUT_TOKENS: "tokens",
    UsageBucket.AUDIO_OUTPUT_TOKENS: "tokens",
    UsageBucket.CHARACTERS: "characters",
}

TOKEN_BUCKETS = frozenset(bucket for bucket, unit in BUCKET_UNITS.items() if unit == "tokens")


class ServiceTier(StrEnum):
    STANDARD = "standard"
    BATCH = "batch"
    FLEX = "flex"
    PRIORITY = "priority"


class ChargeCategory(StrEnum):
    """What kind of charge a line is; credits and refunds are never netted into usage."""

    USAGE = "usage"
    PURCHASE = "purchase"
    TAX = "tax"
    CREDIT = "credit"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"


class PricingBasis(StrEnum):
    """Where a usage line's cost comes from."""

    CATALOGUE = "catalogue"  # usage quantities priced from the price catalogue
    PROVIDER_BILLED = "provider_billed"  # a line of a bill of record: the provider's billed cost is the cost


class EventEnvelope(FrozenModel):
    """Fields every event carries."""

    EVENT_TYPE: ClassVar[str]

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: NonEmptyStr
    occurred_at: AwareDatetime = Field(description="When the fact happened (UTC).")
    produced_at: AwareDatetime = Field(default_factory=utc_now, description="When this event was produced (UTC).")
    source: NonEmptyStr = Field(description="Producing component, such as 'ingest.openai.usage.completions'.")
    tenant: NonEmptyStr
    correlation_id: NonEmptyStr

    @field_validator("occurred_at", "produced_at")
    @classmethod
    def _as_utc(cls, value: datetime) -> datetime:
        return _to_utc(value)


class UsageDimensions(FrozenModel):
    """Attribution keys as the provider reported them; absent keys are None."""

    project_id: str | None = None
    api_key_id: str | None = None
    workspace_id: str | None = None
    user_id: str | None = None
    account_id: str | None = None
    resource_id: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class Evidence(FrozenModel):
    """Where an event came from, so any figure can be traced to the provider's data."""

    format: NonEmptyStr
    file_name: str | None = None
    row_number: int | None = Field(default=None, description="1-based data row or result number in the source.")
    raw_sha256: str | None = Field(default=None, description="SHA-256 of the raw row or payload as received.")


class UsageRecorded(EventEnvelope):
    """A provider reported AI usage, normalised into exclusive buckets."""

    EVENT_TYPE: ClassVar[str] = "usage.recorded"
    event_type: Literal["usage.recorded"] = "usage.recorded"

    provider: NonEmptyStr
    service: str | None = None
    model: str | None = Field(default=None, description="Model id as the provider reported it; None when not reported.")
    service_tier: ServiceTier = ServiceTier.STANDARD
    region: str | None = None
    period_start: AwareDatetime
    period_end: AwareDatetime
    dimensions: UsageDimensions = Field(default_factory=UsageDimensions)
    quantities: dict[UsageBucket, Decimal] = Field(default_factory=dict)
    request_count: int | None = Field(default=None, ge=0, description="Model requests; informational, not billed.")
    charge_category: ChargeCategory = ChargeCategory.USAGE
    pricing_basis: PricingBasis = Field(
        default=PricingBasis.CATALOGUE,
        description="provider_billed for lines of a bill of record (FOCUS, CUR, cloud exports), whose billed cost "
        "is the cost; catalogue for usage reports, whose quantities are priced from the catalogue.",
    )
    provider_cost: Money | None = Field(
        default=None,
        description="Cost the provider stated for this line: the cost itself for billed lines, a figure to "
        "reconcile against otherwise.",
    )
    provider_list_cost: Money | None = None
    provider_effective_cost: Money | None = None
    consumed_quantity: Decimal | None = Field(default=None, description="Quantity in the provider's own unit.")
    consumed_unit: str | None = None
    description: str | None = None
    evidence: Evidence

    @field_validator("period_start", "period_end")
    @classmethod
    def _period_as_utc(cls, value: datetime) -> datetime:
        return _to_utc(value)

    @field_validator("quantities")
    @classmethod
    def _quantities_are_usage(cls, value: dict[UsageBucket, Decimal]) -> dict[UsageBucket, Decimal]:
        for bucket, quantity in value.items():
            _finite(quantity, f"quantities.{bucket.value}")
            if quantity < 0:
                raise ValueError(f"quantities.{bucket.value} must not be negative, got {quantity}")
            if bucket in TOKEN_BUCKETS and quantity != quantity.to_integral_value():
                raise ValueError(f"quantities.{bucket.value} must be a whole number of tokens, got {quantity}")
        return value

    @model_validator(mode="after")
    def _period_is_ordered(self) -> UsageRecorded:
        if self.period_end < self.period_start:
            raise ValueError(f"period_end {self.period_end} is before period_start {self.period_start}")
        return self


class ProviderCostReported(EventEnvelope):
    """A provider's own statement of what it charged (cost API or cost report), kept for reconciliation.

    It is not a bill line and never adds to spend: allocation compares it with the cost it computed from usage.
    """

    EVENT_TYPE: ClassVar[str] = "provider_cost.reported"
    event_type: Literal["provider_cost.reported"] = "provider_cost.reported"

    provider: NonEmptyStr
    period_start: AwareDatetime
    period_end: AwareDatetime
    model: str | None = Field(default=None, description="None when the report is not broken down by model.")
    line_item: str | None = Field(default=None, description="The provider's line item or cost type, as written.")
    token_type: str | None = Field(default=None, description="Token kind the line is for, when the report says.")
    service_tier: ServiceTier | None = None
    dimensions: UsageDimensions = Field(default_factory=UsageDimensions)
    amount: Money
    evidence: Evidence


class SeatActivityReported(EventEnvelope):
    """One assigned seat of an AI tool licence, with its last activity, as of a report date."""

    EVENT_TYPE: ClassVar[str] = "seat.activity_reported"
    event_type: Literal["seat.activity_reported"] = "seat.activity_reported"

    vendor: NonEmptyStr = Field(description="Licence vendor, such as 'github' or 'microsoft'.")
    product: NonEmptyStr = Field(description="Licensed product, such as 'github-copilot' or 'microsoft-365-copilot'.")
    as_of: AwareDatetime = Field(description="When the report was taken.")
    seat_holder: NonEmptyStr = Field(description="Login, user principal name or its hash, as the report gives it.")
    plan: str | None = None
    assigned_at: AwareDatetime | None = None
    last_activity_at: AwareDatetime | None = Field(default=None, description="None when the seat was never used.")
    last_activity_surface: str | None = Field(default=None, description="Editor or app of the last activity.")
    assigning_team: str | None = None
    pending_cancellation_date: str | None = Field(default=None, description="'YYYY-MM-DD' when a cancellation is due.")
    dimensions: UsageDimensions = Field(default_factory=UsageDimensions)
    evidence: Evidence


class SeatEntitlementReported(EventEnvelope):
    """How many seats of an AI tool licence an organisation holds and uses, as of a report date."""

    EVENT_TYPE: ClassVar[str] = "seat.entitlement_reported"
    event_type: Literal["seat.entitlement_reported"] = "seat.entitlement_reported"

    vendor: NonEmptyStr
    product: NonEmptyStr
    as_of: AwareDatetime
    entitled_seats: int = Field(ge=0, description="Seats paid for.")
    active_seats: int | None = Field(default=None, ge=0)
    inactive_seats: int | None = Field(default=None, ge=0)
    pending_cancellation_seats: int | None = Field(default=None, ge=0)
    seat_price: Money | None = Field(default=None, description="Price of one seat for one month, when known.")
    dimensions: UsageDimensions = Field(default_factory=UsageDimensions)
    evidence: Evidence


class GpuUtilisationReported(EventEnvelope):
    """How busy one GPU was over a window, from GPU telemetry such as the NVIDIA DCGM exporter."""

    EVENT_TYPE: ClassVar[str] = "gpu.utilisation_reported"
    event_type: Literal["gpu.utilisation_reported"] = "gpu.utilisation_reported"

    host: NonEmptyStr
    gpu_id: NonEmptyStr = Field(description="GPU UUID, or host and index when there is no UUID.")
    gpu_model: str | None = None
    window_start: AwareDatetime
    window_end: AwareDatetime
    utilisation_percent: Decimal = Field(ge=0, le=100, description="Mean GPU utilisation over the window.")
    memory_used_mib: Decimal | None = Field(default=None, ge=0)
    memory_total_mib: Decimal | None = Field(default=None, ge=0)
    dimensions: UsageDimensions = Field(
        default_factory=UsageDimensions, description="Attribution such as namespace and pod, as tags."
    )
    evidence: Evidence


class CostStatus(StrEnum):
    PRICED = "priced"  # costed from the price catalogue
    PROVIDER_BILLED = "provider_billed"  # the provider's billed cost, used as reported
    UNPRICED = "unpriced"  # no price found: kept and flagged, never costed at zero


class Allocation(FrozenModel):
    """Who owns a cost, decided by the first matching allocation rule."""

    team: NonEmptyStr
    cost_centre: NonEmptyStr
    use_case: str | None = None
    environment: str | None = None
    rule_id: NonEmptyStr = Field(description="Id of the rule that matched, or 'unallocated'.")
    product: str | None = None


class AllocationShare(FrozenModel):
    """The part of a cost that one owner carries; a cost split between owners has one share each."""

    allocation: Allocation
    fraction: Decimal = Field(description="Share of the cost, between 0 and 1; the shares of a cost add up to 1.")
    amount: Money | None = Field(description="This share's cost; None when the cost is unpriced.")
    basis: str | None = Field(
        default=None, description="How the fraction was decided, such as 'even split of pool ai-gateway'."
    )


class CostCorrection(FrozenModel):
    """Why a later revision of a cost replaced an earlier one, with the amount it replaced."""

    previous_revision: int = Field(ge=1)
    previous_status: CostStatus
    previous_cost: Money | None
    reason: NonEmptyStr


class CostLine(FrozenModel):
    """One bucket of usage times its unit price."""

    bucket: UsageBucket
    quantity: Decimal
    unit: NonEmptyStr
    unit_price: Money = Field(description="Price per `price_per` units.")
    price_per: int = Field(gt=0, description="How many units `unit_price` is quoted for, such as 1000000 tokens.")
    amount: Money
    price_row_id: NonEmptyStr
    price_source: Literal["catalogue", "custom", "contract"] = Field(
        default="catalogue", description="Which price list the row came from: contract, tenant custom or catalogue."
    )
    list_unit_price: Money | None = Field(
        default=None, description="Unit price before a contract discount; None when no discount applied."
    )
    list_amount: Money | None = Field(default=None, description="Amount at the list unit price, when it differs.")
    discount_id: str | None = Field(default=None, description="Contract whose discount the line received.")


class CostAllocated(EventEnvelope):
    """Allocation priced one usage event and attributed its cost."""

    EVENT_TYPE: ClassVar[str] = "cost.allocated"
    event_type: Literal["cost.allocated"] = "cost.allocated"

    usage_event_id: NonEmptyStr
    provider: NonEmptyStr
    service: str | None = None
    model: str | None = None
    priced_model: str | None = Field(default=None, description="Catalogue model id after alias resolution.")
    service_tier: ServiceTier
    period_start: AwareDatetime
    period_end: AwareDatetime
    dimensions: UsageDimensions
    quantities: dict[UsageBucket, Decimal]
    request_count: int | None = None
    charge_category: ChargeCategory
    status: CostStatus
    unpriced_reason: str | None = None
    lines: tuple[CostLine, ...] = ()
    cost: Money | None = Field(description="Total cost; None when unpriced.")
    provider_cost: Money | None = None
    catalogue_version: str | None = None
    allocation: Allocation = Field(description="The primary owner: the owner of the first share.")
    shares: tuple[AllocationShare, ...] = Field(
        default=(), description="Who carries the cost; without shares the primary owner carries all of it."
    )
    revision: int = Field(
        default=1, ge=1, description="A higher revision of the same usage event replaces a lower one."
    )
    correction: CostCorrection | None = Field(default=None, description="Set on revisions above 1.")
    region: str | None = Field(default=None, description="Provider region of the usage, as the usage event gave it.")

    @model_validator(mode="after")
    def _status_matches_cost(self) -> CostAllocated:
        if not self.shares:
            # Without shares the primary owner carries all of the cost. This runs after validation, not before,
            # because a model-wide "before" hook makes pydantic build Python objects from JSON before validating.
            share = AllocationShare(allocation=self.allocation, fraction=Decimal(1), amount=self.cost)
            self.__dict__["shares"] = (share,)
        if self.status is CostStatus.UNPRICED and self.cost is not None:
            raise ValueError("an unpriced cost event must not carry a cost")
        if self.status is not CostStatus.UNPRICED and self.cost is None:
            raise ValueError(f"a {self.status.value} cost event must carry a cost")
        if sum((share.fraction for share in self.shares), Decimal(0)) != 1:
            raise ValueError("share fractions must add up to exactly 1")
        if self.cost is not None:
            amounts = [share.amount for share in self.shares]
            if any(amount is None or amount.currency != self.cost.currency for amount in amounts):
                raise ValueError(f"every share of a priced cost needs an amount in {self.cost.currency}")
            if sum((amount.amount for amount in amounts if amount), Decimal(0)) != self.cost.amount:
                raise ValueError("share amounts must add up to exactly the cost")
        if (self.revision > 1) != (self.correction is not None):
            raise ValueError("a correction is required on revisions above 1 and only there")
        return self


class CostVarianceDetected(EventEnvelope):
    """Allocation's cost differs from the cost the provider reported beyond the configured tolerance."""

    EVENT_TYPE: ClassVar[str] = "cost.variance_detected"
    event_type: Literal["cost.variance_detected"] = "cost.variance_detected"

    provider: NonEmptyStr
    day: NonEmptyStr = Field(description="UTC day compared, 'YYYY-MM-DD'.")
    model: str | None = Field(default=None, description="None when the provider reports cost per day only.")
    computed_cost: Money = Field(description="What aifinops computed from usage and the price catalogue.")
    provider_cost: Money = Field(description="What the provider reported it charged.")
    variance: Money = Field(description="provider_cost minus computed_cost.")
    variance_percent: Decimal | None = Field(
        description="variance / provider_cost × 100; None when provider_cost is 0."
    )
    tolerance_percent: Decimal
    tolerance_amount: Decimal | None = Field(
        default=None,
        description="Variances up to this amount, in provider_cost's currency, are never flagged; None in events "
        "published before the amount was recorded.",
    )
    likely_cause: NonEmptyStr
    evidence_event_ids: tuple[str, ...] = ()
    dimensions: UsageDimensions = Field(
        default_factory=UsageDimensions,
        description="Attribution keys the comparison is limited to, such as a project; empty for the whole tenant.",
    )


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class FindingStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    ACCEPTED_RISK = "accepted_risk"
    FALSE_POSITIVE = "false_positive"


class TicketReference(FrozenModel):
    """A ticket in an ITSM system that tracks a finding."""

    system: NonEmptyStr = Field(description="'servicenow', 'jira' or 'webhook'.")
    key: NonEmptyStr = Field(description="The ticket's number or key, such as 'INC0010002' or 'ED-24'.")
    url: str | None = None


class RiskFlagged(EventEnvelope):
    """Risk review raised or updated a finding; facts and interpretation are kept apart."""

    EVENT_TYPE: ClassVar[str] = "risk.flagged"
    event_type: Literal["risk.flagged"] = "risk.flagged"

    finding_id: NonEmptyStr
    kind: NonEmptyStr = Field(description="Finding kind, such as 'budget_threshold' or 'unpriced_usage'.")
    severity: Severity
    status: FindingStatus
    subject: NonEmptyStr = Field(description="What the finding is about, such as 'team:research'.")
    owner: str | None = None
    title: NonEmptyStr
    facts: dict[str, str] = Field(description="Measured figures behind the finding, as exact strings.")
    interpretation: NonEmptyStr = Field(description="What the facts suggest; a reading, not a measurement.")
    evidence_event_ids: tuple[str, ...] = ()
    revision: int = Field(default=1, ge=1, description="Grows by one with every change of figures or status.")
    status_changed_by: str | None = Field(
        default=None, description="Who set the current status: a person, 'risk', or the ITSM system and its user."
    )
    status_changed_at: AwareDatetime | None = None
    status_note: str | None = Field(default=None, description="Reason given with the last status change.")
    reopen_count: int = Field(default=0, ge=0, description="How often the finding recurred after it was resolved.")
    tickets: tuple[TicketReference, ...] = Field(default=(), description="ITSM tickets that track this finding.")


class OutcomeRecorded(EventEnvelope):
    """A business outcome that a use case produced, such as support tickets resolved."""

    EVENT_TYPE: ClassVar[str] = "outcome.recorded"
    event_type: Literal["outcome.recorded"] = "outcome.recorded"

    use_case: NonEmptyStr
    outcome_kind: NonEmptyStr
    quantity: Decimal = Field(description="How many outcomes, in `unit`.")
    unit: NonEmptyStr
    value: Money | None = Field(default=None, description="Business value of these outcomes, when known.")

    @field_validator("quantity")
    @classmethod
    def _quantity_is_positive(cls, value: Decimal) -> Decimal:
        _finite(value, "quantity")
        if value <= 0:
            raise ValueError(f"quantity must be positive, got {value}")
        return value


class ValueMapped(EventEnvelope):
    """Unit economics of one use case over one period."""

    EVENT_TYPE: ClassVar[str] = "value.mapped"
    event_type: Literal["value.mapped"] = "value.mapped"

    use_case: NonEmptyStr
    period: NonEmptyStr = Field(description="Calendar month, 'YYYY-MM', in UTC.")
    cost: Money
    outcome_kind: NonEmptyStr
    outcomes: Decimal
    outcome_unit: NonEmptyStr
    cost_per_outcome: Money | None = Field(description="None when the period has no outcomes.")
    value: Money | None = None
    cost_event_count: int = Field(ge=0)
    value_linked: bool = Field(
        default=True, description="False when the use case had spend in the period and no outcome was recorded."
    )
    owner: str | None = Field(default=None, description="Owner of the use case, from the use case register.")
    value_source: str | None = Field(
        default=None,
        description="Where the value comes from: 'outcome_events' (values sent with the outcomes), "
        "'value_per_outcome' or 'baseline_cost_avoided' (outcomes times a figure from the use case register), "
        "or several of them joined by '+'.",
    )
    net_benefit: Money | None = Field(default=None, description="value minus cost; None without a value.")
    roi_percent: Decimal | None = Field(
        default=None,
        description="(value − cost) / cost × 100, rounded half-even to 2 places; None without value or cost.",
    )
    payback_months: Decimal | None = Field(
        default=None,
        description="Investment / net benefit of this period, in months, rounded half-even to 2 places; None without "
        "an investment or when the net benefit is not positive.",
    )
    baseline_cost_per_outcome: Money | None = Field(
        default=None, description="What one outcome cost before the use case, from the use case register."
    )
    previous_period: str | None = Field(default=None, description="The calendar month before `period`.")
    previous_cost_per_outcome: Money | None = Field(default=None, description="Cost per outcome in previous_period.")
    cost_per_outcome_change_percent: Decimal | None = Field(
        default=None,
        description="(cost_per_outcome − previous_cost_per_outcome) / previous_cost_per_outcome × 100, rounded "
        "half-even to 2 places; negative means each outcome got cheaper.",
    )
    previous_roi_percent: Decimal | None = Field(default=None, description="roi_percent of previous_period.")


class RecommendationKind(StrEnum):
    BATCH_TIER = "batch_tier"
    CHEAPER_MODEL = "cheaper_model"
    PROMPT_CACHING = "prompt_caching"
    COMMITMENT = "commitment"
    IDLE_GPU = "idle_gpu"
    UNDERUSED_GPU = "underused_gpu"
    UNUSED_SEATS = "unused_seats"
    OVERLAPPING_TOOLS = "overlapping_tools"


class SavingsRecommended(EventEnvelope):
    """The optimizer found a saving and wrote down how it estimated it."""

    EVENT_TYPE: ClassVar[str] = "savings.recommended"
    event_type: Literal["savings.recommended"] = "savings.recommended"

    recommendation_id: NonEmptyStr
    kind: RecommendationKind
    scope: NonEmptyStr = Field(description="What the recommendation applies to, such as 'team:research model:gpt-4o'.")
    estimated_monthly_savings: Money
    confidence: Literal["low", "medium", "high"]
    arithmetic: LongText = Field(description="The estimate written out with every figure used.")
    caveat: str | None = None
    evidence_event_ids: tuple[str, ...] = ()
    status: Literal["open", "accepted", "dismissed", "implemented"] = "open"
    ticket_requested: bool = Field(
        default=False, description="True when someone asked for an ITSM ticket; risk's connectors open it."
    )
    revision: int = Field(
        default=1, ge=1, description="A higher revision of the same recommendation replaces a lower one."
    )
    price_row_ids: tuple[str, ...] = Field(
        default=(), description="Price rows, offers or seat prices the estimate used, by id."
    )
    status_reason: str | None = Field(default=None, description="Why the status changed; required for dismissals.")
    status_changed_by: str | None = None
    status_changed_at: AwareDatetime | None = None
    baseline_monthly_cost: Money | None = Field(
        default=None, description="Monthly cost of what the recommendation covers, before any change."
    )
    baseline_period: str | None = Field(default=None, description="Month the baseline cost was measured in.")
    realised_monthly_savings: Money | None = Field(
        default=None, description="Measured after implementation: baseline minus the monthly cost since then."
    )
    realised_arithmetic: str | None = None


class DeadLetterRecorded(EventEnvelope):
    """A message that could not be processed, with the reason and its original bytes."""

    EVENT_TYPE: ClassVar[str] = "dead_letter.recorded"
    event_type: Literal["dead_letter.recorded"] = "dead_letter.recorded"

    consumer: NonEmptyStr = Field(description="Service or command that gave up on the message.")
    original_topic: str | None = None
    original_partition: int | None = None
    original_offset: int | None = None
    original_key_b64: str | None = None
    original_bytes_b64: str = Field(description="The message or input row exactly as received, base64.")
    reason: NonEmptyStr
    field_path: str | None = Field(default=None, description="Dotted path of the invalid field, when known.")
    attempts: int = Field(ge=1)


EVENT_MODELS: dict[str, type[EventEnvelope]] = {
    model.EVENT_TYPE: model
    for model in (
        UsageRecorded,
        ProviderCostReported,
        SeatActivityReported,
        SeatEntitlementReported,
        GpuUtilisationReported,
        CostAllocated,
        CostVarianceDetected,
        RiskFlagged,
        OutcomeRecorded,
        ValueMapped,
        SavingsRecommended,
        DeadLetterRecorded,
    )
}

AnyEvent = Annotated[
    UsageRecorded
    | ProviderCostReported
    | SeatActivityReported
    | SeatEntitlementReported
    | GpuUtilisationReported
    | CostAllocated
    | CostVarianceDetected
    | RiskFlagged
    | OutcomeRecorded
    | ValueMapped
    | SavingsRecommended
    | DeadLetterRecorded,
    Field(discriminator="event_type"),
]
_ANY_EVENT: TypeAdapter[Any] = TypeAdapter(AnyEvent)


def parse_event(data: bytes | str) -> EventEnvelope:
    """Parse any event from JSON, choosing the model by its ``event_type``."""
    return _ANY_EVENT.validate_json(data)  # type: ignore[no-any-return]


def event_json_schemas() -> dict[str, dict[str, Any]]:
    """Return the JSON Schema of every event, keyed by event type."""
    return {event_type: model.model_json_schema(mode="serialization") for event_type, model in EVENT_MODELS.items()}
