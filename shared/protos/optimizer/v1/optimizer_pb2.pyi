from shared.protos.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListRecommendationsRequest(_message.Message):
    __slots__ = ("tenant", "status", "kind", "page_size", "page_token")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    status: str
    kind: str
    page_size: int
    page_token: str
    def __init__(self, tenant: _Optional[str] = ..., status: _Optional[str] = ..., kind: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class HistoryEntry(_message.Message):
    __slots__ = ("revision", "status", "reason", "changed_by", "changed_at")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CHANGED_BY_FIELD_NUMBER: _ClassVar[int]
    CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    revision: int
    status: str
    reason: str
    changed_by: str
    changed_at: str
    def __init__(self, revision: _Optional[int] = ..., status: _Optional[str] = ..., reason: _Optional[str] = ..., changed_by: _Optional[str] = ..., changed_at: _Optional[str] = ...) -> None: ...

class Recommendation(_message.Message):
    __slots__ = ("recommendation_id", "kind", "scope", "status", "estimated_monthly_savings", "confidence", "arithmetic", "caveat", "revision", "ticket_requested", "status_reason", "status_changed_by", "status_changed_at", "baseline_monthly_cost", "baseline_period", "realised_monthly_savings", "realised_arithmetic", "evidence_event_ids", "price_row_ids", "history")
    RECOMMENDATION_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_MONTHLY_SAVINGS_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    ARITHMETIC_FIELD_NUMBER: _ClassVar[int]
    CAVEAT_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    TICKET_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    STATUS_REASON_FIELD_NUMBER: _ClassVar[int]
    STATUS_CHANGED_BY_FIELD_NUMBER: _ClassVar[int]
    STATUS_CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    BASELINE_MONTHLY_COST_FIELD_NUMBER: _ClassVar[int]
    BASELINE_PERIOD_FIELD_NUMBER: _ClassVar[int]
    REALISED_MONTHLY_SAVINGS_FIELD_NUMBER: _ClassVar[int]
    REALISED_ARITHMETIC_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_EVENT_IDS_FIELD_NUMBER: _ClassVar[int]
    PRICE_ROW_IDS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    recommendation_id: str
    kind: str
    scope: str
    status: str
    estimated_monthly_savings: _common_pb2.Money
    confidence: str
    arithmetic: str
    caveat: str
    revision: int
    ticket_requested: bool
    status_reason: str
    status_changed_by: str
    status_changed_at: str
    baseline_monthly_cost: str
    baseline_period: str
    realised_monthly_savings: str
    realised_arithmetic: str
    evidence_event_ids: _containers.RepeatedScalarFieldContainer[str]
    price_row_ids: _containers.RepeatedScalarFieldContainer[str]
    history: _containers.RepeatedCompositeFieldContainer[HistoryEntry]
    def __init__(self, recommendation_id: _Optional[str] = ..., kind: _Optional[str] = ..., scope: _Optional[str] = ..., status: _Optional[str] = ..., estimated_monthly_savings: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., confidence: _Optional[str] = ..., arithmetic: _Optional[str] = ..., caveat: _Optional[str] = ..., revision: _Optional[int] = ..., ticket_requested: _Optional[bool] = ..., status_reason: _Optional[str] = ..., status_changed_by: _Optional[str] = ..., status_changed_at: _Optional[str] = ..., baseline_monthly_cost: _Optional[str] = ..., baseline_period: _Optional[str] = ..., realised_monthly_savings: _Optional[str] = ..., realised_arithmetic: _Optional[str] = ..., evidence_event_ids: _Optional[_Iterable[str]] = ..., price_row_ids: _Optional[_Iterable[str]] = ..., history: _Optional[_Iterable[_Union[HistoryEntry, _Mapping]]] = ...) -> None: ...

class ListRecommendationsResponse(_message.Message):
    __slots__ = ("recommendations", "next_page_token")
    RECOMMENDATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    recommendations: _containers.RepeatedCompositeFieldContainer[Recommendation]
    next_page_token: str
    def __init__(self, recommendations: _Optional[_Iterable[_Union[Recommendation, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetRecommendationRequest(_message.Message):
    __slots__ = ("tenant", "recommendation_id")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATION_ID_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    recommendation_id: str
    def __init__(self, tenant: _Optional[str] = ..., recommendation_id: _Optional[str] = ...) -> None: ...

class ChangeRecommendationRequest(_message.Message):
    __slots__ = ("tenant", "recommendation_id", "changed_by", "reason")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATION_ID_FIELD_NUMBER: _ClassVar[int]
    CHANGED_BY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    recommendation_id: str
    changed_by: str
    reason: str
    def __init__(self, tenant: _Optional[str] = ..., recommendation_id: _Optional[str] = ..., changed_by: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...
