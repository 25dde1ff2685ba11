from shared.protos.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListUnitEconomicsRequest(_message.Message):
    __slots__ = ("tenant", "use_case", "page_size", "page_token")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    use_case: str
    page_size: int
    page_token: str
    def __init__(self, tenant: _Optional[str] = ..., use_case: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class UnitEconomics(_message.Message):
    __slots__ = ("use_case", "period", "owner", "cost", "outcome_kind", "outcomes", "outcome_unit", "cost_per_outcome", "value", "value_source", "net_benefit", "roi_percent", "payback_months", "baseline_cost_per_outcome", "previous_period", "previous_cost_per_outcome", "cost_per_outcome_change_percent", "previous_roi_percent", "cost_events", "value_linked", "revision")
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_KIND_FIELD_NUMBER: _ClassVar[int]
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_UNIT_FIELD_NUMBER: _ClassVar[int]
    COST_PER_OUTCOME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    VALUE_SOURCE_FIELD_NUMBER: _ClassVar[int]
    NET_BENEFIT_FIELD_NUMBER: _ClassVar[int]
    ROI_PERCENT_FIELD_NUMBER: _ClassVar[int]
    PAYBACK_MONTHS_FIELD_NUMBER: _ClassVar[int]
    BASELINE_COST_PER_OUTCOME_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_PERIOD_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_COST_PER_OUTCOME_FIELD_NUMBER: _ClassVar[int]
    COST_PER_OUTCOME_CHANGE_PERCENT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_ROI_PERCENT_FIELD_NUMBER: _ClassVar[int]
    COST_EVENTS_FIELD_NUMBER: _ClassVar[int]
    VALUE_LINKED_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    use_case: str
    period: str
    owner: str
    cost: _common_pb2.Money
    outcome_kind: str
    outcomes: str
    outcome_unit: str
    cost_per_outcome: str
    value: str
    value_source: str
    net_benefit: str
    roi_percent: str
    payback_months: str
    baseline_cost_per_outcome: str
    previous_period: str
    previous_cost_per_outcome: str
    cost_per_outcome_change_percent: str
    previous_roi_percent: str
    cost_events: int
    value_linked: bool
    revision: int
    def __init__(self, use_case: _Optional[str] = ..., period: _Optional[str] = ..., owner: _Optional[str] = ..., cost: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., outcome_kind: _Optional[str] = ..., outcomes: _Optional[str] = ..., outcome_unit: _Optional[str] = ..., cost_per_outcome: _Optional[str] = ..., value: _Optional[str] = ..., value_source: _Optional[str] = ..., net_benefit: _Optional[str] = ..., roi_percent: _Optional[str] = ..., payback_months: _Optional[str] = ..., baseline_cost_per_outcome: _Optional[str] = ..., previous_period: _Optional[str] = ..., previous_cost_per_outcome: _Optional[str] = ..., cost_per_outcome_change_percent: _Optional[str] = ..., previous_roi_percent: _Optional[str] = ..., cost_events: _Optional[int] = ..., value_linked: _Optional[bool] = ..., revision: _Optional[int] = ...) -> None: ...

class ListUnitEconomicsResponse(_message.Message):
    __slots__ = ("unit_economics", "next_page_token")
    UNIT_ECONOMICS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    unit_economics: _containers.RepeatedCompositeFieldContainer[UnitEconomics]
    next_page_token: str
    def __init__(self, unit_economics: _Optional[_Iterable[_Union[UnitEconomics, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
