from shared.protos.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListFindingsRequest(_message.Message):
    __slots__ = ("tenant", "statuses", "all_statuses", "kind", "page_size", "page_token")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    ALL_STATUSES_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    statuses: _containers.RepeatedScalarFieldContainer[str]
    all_statuses: bool
    kind: str
    page_size: int
    page_token: str
    def __init__(self, tenant: _Optional[str] = ..., statuses: _Optional[_Iterable[str]] = ..., all_statuses: _Optional[bool] = ..., kind: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class Ticket(_message.Message):
    __slots__ = ("system", "key", "url", "remote_state")
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    REMOTE_STATE_FIELD_NUMBER: _ClassVar[int]
    system: str
    key: str
    url: str
    remote_state: str
    def __init__(self, system: _Optional[str] = ..., key: _Optional[str] = ..., url: _Optional[str] = ..., remote_state: _Optional[str] = ...) -> None: ...

class FindingSummary(_message.Message):
    __slots__ = ("finding_id", "kind", "severity", "status", "subject", "owner", "title", "revision", "reopen_count", "opened_at", "updated_at", "status_changed_by", "status_changed_at", "status_note", "tickets")
    FINDING_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    REOPEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    OPENED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_CHANGED_BY_FIELD_NUMBER: _ClassVar[int]
    STATUS_CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_NOTE_FIELD_NUMBER: _ClassVar[int]
    TICKETS_FIELD_NUMBER: _ClassVar[int]
    finding_id: str
    kind: str
    severity: str
    status: str
    subject: str
    owner: str
    title: str
    revision: int
    reopen_count: int
    opened_at: str
    updated_at: str
    status_changed_by: str
    status_changed_at: str
    status_note: str
    tickets: _containers.RepeatedCompositeFieldContainer[Ticket]
    def __init__(self, finding_id: _Optional[str] = ..., kind: _Optional[str] = ..., severity: _Optional[str] = ..., status: _Optional[str] = ..., subject: _Optional[str] = ..., owner: _Optional[str] = ..., title: _Optional[str] = ..., revision: _Optional[int] = ..., reopen_count: _Optional[int] = ..., opened_at: _Optional[str] = ..., updated_at: _Optional[str] = ..., status_changed_by: _Optional[str] = ..., status_changed_at: _Optional[str] = ..., status_note: _Optional[str] = ..., tickets: _Optional[_Iterable[_Union[Ticket, _Mapping]]] = ...) -> None: ...

class ListFindingsResponse(_message.Message):
    __slots__ = ("findings", "next_page_token")
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    findings: _containers.RepeatedCompositeFieldContainer[FindingSummary]
    next_page_token: str
    def __init__(self, findings: _Optional[_Iterable[_Union[FindingSummary, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetFindingRequest(_message.Message):
    __slots__ = ("tenant", "finding_id")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    FINDING_ID_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    finding_id: str
    def __init__(self, tenant: _Optional[str] = ..., finding_id: _Optional[str] = ...) -> None: ...

class StatusChange(_message.Message):
    __slots__ = ("revision", "from_status", "to_status", "actor", "note", "at")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    FROM_STATUS_FIELD_NUMBER: _ClassVar[int]
    TO_STATUS_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    revision: int
    from_status: str
    to_status: str
    actor: str
    note: str
    at: str
    def __init__(self, revision: _Optional[int] = ..., from_status: _Optional[str] = ..., to_status: _Optional[str] = ..., actor: _Optional[str] = ..., note: _Optional[str] = ..., at: _Optional[str] = ...) -> None: ...

class TicketWork(_message.Message):
    __slots__ = ("state", "attempts", "next_attempt_at", "last_error")
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    state: str
    attempts: int
    next_attempt_at: str
    last_error: str
    def __init__(self, state: _Optional[str] = ..., attempts: _Optional[int] = ..., next_attempt_at: _Optional[str] = ..., last_error: _Optional[str] = ...) -> None: ...

class Finding(_message.Message):
    __slots__ = ("summary", "facts", "interpretation", "evidence_event_ids", "ticket_work", "changes")
    class FactsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    FACTS_FIELD_NUMBER: _ClassVar[int]
    INTERPRETATION_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_EVENT_IDS_FIELD_NUMBER: _ClassVar[int]
    TICKET_WORK_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    summary: FindingSummary
    facts: _containers.ScalarMap[str, str]
    interpretation: str
    evidence_event_ids: _containers.RepeatedScalarFieldContainer[str]
    ticket_work: TicketWork
    changes: _containers.RepeatedCompositeFieldContainer[StatusChange]
    def __init__(self, summary: _Optional[_Union[FindingSummary, _Mapping]] = ..., facts: _Optional[_Mapping[str, str]] = ..., interpretation: _Optional[str] = ..., evidence_event_ids: _Optional[_Iterable[str]] = ..., ticket_work: _Optional[_Union[TicketWork, _Mapping]] = ..., changes: _Optional[_Iterable[_Union[StatusChange, _Mapping]]] = ...) -> None: ...

class ChangeFindingRequest(_message.Message):
    __slots__ = ("tenant", "finding_id", "actor", "note")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    FINDING_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    finding_id: str
    actor: str
    note: str
    def __init__(self, tenant: _Optional[str] = ..., finding_id: _Optional[str] = ..., actor: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class FindingChange(_message.Message):
    __slots__ = ("finding_id", "status", "revision", "actor")
    FINDING_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    finding_id: str
    status: str
    revision: int
    actor: str
    def __init__(self, finding_id: _Optional[str] = ..., status: _Optional[str] = ..., revision: _Optional[int] = ..., actor: _Optional[str] = ...) -> None: ...

class GetTicketBacklogRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TicketBacklog(_message.Message):
    __slots__ = ("pending", "failed")
    PENDING_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    pending: int
    failed: int
    def __init__(self, pending: _Optional[int] = ..., failed: _Optional[int] = ...) -> None: ...

class RetryFailedTicketsRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class RetryFailedTicketsResponse(_message.Message):
    __slots__ = ("queued_again",)
    QUEUED_AGAIN_FIELD_NUMBER: _ClassVar[int]
    queued_again: int
    def __init__(self, queued_again: _Optional[int] = ...) -> None: ...

class ListBudgetsRequest(_message.Message):
    __slots__ = ("tenant", "page_size", "page_token")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    page_size: int
    page_token: str
    def __init__(self, tenant: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class Budget(_message.Message):
    __slots__ = ("budget_id", "scope_key", "scope_value", "amount", "period", "thresholds", "forecast_thresholds", "owner", "sandbox", "tenant", "forecast_after_days", "source", "set_by", "set_at")
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPE_KEY_FIELD_NUMBER: _ClassVar[int]
    SCOPE_VALUE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    FORECAST_THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    FORECAST_AFTER_DAYS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SET_BY_FIELD_NUMBER: _ClassVar[int]
    SET_AT_FIELD_NUMBER: _ClassVar[int]
    budget_id: str
    scope_key: str
    scope_value: str
    amount: _common_pb2.Money
    period: str
    thresholds: _containers.RepeatedScalarFieldContainer[int]
    forecast_thresholds: _containers.RepeatedScalarFieldContainer[int]
    owner: str
    sandbox: bool
    tenant: str
    forecast_after_days: str
    source: str
    set_by: str
    set_at: str
    def __init__(self, budget_id: _Optional[str] = ..., scope_key: _Optional[str] = ..., scope_value: _Optional[str] = ..., amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., period: _Optional[str] = ..., thresholds: _Optional[_Iterable[int]] = ..., forecast_thresholds: _Optional[_Iterable[int]] = ..., owner: _Optional[str] = ..., sandbox: _Optional[bool] = ..., tenant: _Optional[str] = ..., forecast_after_days: _Optional[str] = ..., source: _Optional[str] = ..., set_by: _Optional[str] = ..., set_at: _Optional[str] = ...) -> None: ...

class ListBudgetsResponse(_message.Message):
    __slots__ = ("budgets", "next_page_token")
    BUDGETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    budgets: _containers.RepeatedCompositeFieldContainer[Budget]
    next_page_token: str
    def __init__(self, budgets: _Optional[_Iterable[_Union[Budget, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SetBudgetRequest(_message.Message):
    __slots__ = ("budget", "set_by")
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    SET_BY_FIELD_NUMBER: _ClassVar[int]
    budget: Budget
    set_by: str
    def __init__(self, budget: _Optional[_Union[Budget, _Mapping]] = ..., set_by: _Optional[str] = ...) -> None: ...

class SetBudgetResponse(_message.Message):
    __slots__ = ("budget", "findings_changed")
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_CHANGED_FIELD_NUMBER: _ClassVar[int]
    budget: Budget
    findings_changed: int
    def __init__(self, budget: _Optional[_Union[Budget, _Mapping]] = ..., findings_changed: _Optional[int] = ...) -> None: ...
