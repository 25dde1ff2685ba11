from shared.protos.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StreamSpendRequest(_message.Message):
    __slots__ = ("tenant", "dimensions", "period", "currency", "start_day", "end_day", "time_zone", "charge_categories")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    START_DAY_FIELD_NUMBER: _ClassVar[int]
    END_DAY_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    CHARGE_CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    dimensions: _containers.RepeatedScalarFieldContainer[str]
    period: str
    currency: str
    start_day: str
    end_day: str
    time_zone: str
    charge_categories: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tenant: _Optional[str] = ..., dimensions: _Optional[_Iterable[str]] = ..., period: _Optional[str] = ..., currency: _Optional[str] = ..., start_day: _Optional[str] = ..., end_day: _Optional[str] = ..., time_zone: _Optional[str] = ..., charge_categories: _Optional[_Iterable[str]] = ...) -> None: ...

class SpendRow(_message.Message):
    __slots__ = ("period", "dimensions", "amount", "time_zone", "unconverted")
    class DimensionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    UNCONVERTED_FIELD_NUMBER: _ClassVar[int]
    period: str
    dimensions: _containers.ScalarMap[str, str]
    amount: _common_pb2.Money
    time_zone: str
    unconverted: bool
    def __init__(self, period: _Optional[str] = ..., dimensions: _Optional[_Mapping[str, str]] = ..., amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., time_zone: _Optional[str] = ..., unconverted: _Optional[bool] = ...) -> None: ...

class StreamPricesRequest(_message.Message):
    __slots__ = ("provider", "model")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    provider: str
    model: str
    def __init__(self, provider: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class Price(_message.Message):
    __slots__ = ("row_id", "provider", "model", "bucket", "service_tier", "unit_price", "price_per", "effective_from", "effective_to", "source", "region", "context_over", "context_measure", "updated", "catalogue_version")
    ROW_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    SERVICE_TIER_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    PRICE_PER_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_FROM_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_TO_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_OVER_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_MEASURE_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    CATALOGUE_VERSION_FIELD_NUMBER: _ClassVar[int]
    row_id: str
    provider: str
    model: str
    bucket: str
    service_tier: str
    unit_price: _common_pb2.Money
    price_per: int
    effective_from: str
    effective_to: str
    source: str
    region: str
    context_over: int
    context_measure: str
    updated: bool
    catalogue_version: str
    def __init__(self, row_id: _Optional[str] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., bucket: _Optional[str] = ..., service_tier: _Optional[str] = ..., unit_price: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., price_per: _Optional[int] = ..., effective_from: _Optional[str] = ..., effective_to: _Optional[str] = ..., source: _Optional[str] = ..., region: _Optional[str] = ..., context_over: _Optional[int] = ..., context_measure: _Optional[str] = ..., updated: _Optional[bool] = ..., catalogue_version: _Optional[str] = ...) -> None: ...

class PriceUpdate(_message.Message):
    __slots__ = ("provider", "model", "bucket", "service_tier", "unit_price", "price_per", "effective_from", "source", "region")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    SERVICE_TIER_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    PRICE_PER_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_FROM_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    provider: str
    model: str
    bucket: str
    service_tier: str
    unit_price: _common_pb2.Money
    price_per: int
    effective_from: str
    source: str
    region: str
    def __init__(self, provider: _Optional[str] = ..., model: _Optional[str] = ..., bucket: _Optional[str] = ..., service_tier: _Optional[str] = ..., unit_price: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., price_per: _Optional[int] = ..., effective_from: _Optional[str] = ..., source: _Optional[str] = ..., region: _Optional[str] = ...) -> None: ...

class UpdatePricesRequest(_message.Message):
    __slots__ = ("updates", "changed_by")
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    CHANGED_BY_FIELD_NUMBER: _ClassVar[int]
    updates: _containers.RepeatedCompositeFieldContainer[PriceUpdate]
    changed_by: str
    def __init__(self, updates: _Optional[_Iterable[_Union[PriceUpdate, _Mapping]]] = ..., changed_by: _Optional[str] = ...) -> None: ...

class UpdatePricesResponse(_message.Message):
    __slots__ = ("catalogue_version", "added", "closed", "corrected", "unchanged")
    CATALOGUE_VERSION_FIELD_NUMBER: _ClassVar[int]
    ADDED_FIELD_NUMBER: _ClassVar[int]
    CLOSED_FIELD_NUMBER: _ClassVar[int]
    CORRECTED_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    catalogue_version: str
    added: int
    closed: int
    corrected: int
    unchanged: int
    def __init__(self, catalogue_version: _Optional[str] = ..., added: _Optional[int] = ..., closed: _Optional[int] = ..., corrected: _Optional[int] = ..., unchanged: _Optional[int] = ...) -> None: ...

class RepriceRequest(_message.Message):
    __slots__ = ("all",)
    ALL_FIELD_NUMBER: _ClassVar[int]
    all: bool
    def __init__(self, all: _Optional[bool] = ...) -> None: ...

class RepriceProgress(_message.Message):
    __slots__ = ("examined", "total", "corrected", "unchanged", "credits_added", "done", "version", "catalogue_version")
    EXAMINED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    CORRECTED_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    CREDITS_ADDED_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CATALOGUE_VERSION_FIELD_NUMBER: _ClassVar[int]
    examined: int
    total: int
    corrected: int
    unchanged: int
    credits_added: int
    done: bool
    version: str
    catalogue_version: str
    def __init__(self, examined: _Optional[int] = ..., total: _Optional[int] = ..., corrected: _Optional[int] = ..., unchanged: _Optional[int] = ..., credits_added: _Optional[int] = ..., done: _Optional[bool] = ..., version: _Optional[str] = ..., catalogue_version: _Optional[str] = ...) -> None: ...

class ListAllocationRulesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class AllocationRule(_message.Message):
    __slots__ = ("position", "rule_id", "conditions", "tags", "allocation", "pool")
    class ConditionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class AllocationEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    POSITION_FIELD_NUMBER: _ClassVar[int]
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    position: int
    rule_id: str
    conditions: _containers.ScalarMap[str, str]
    tags: _containers.ScalarMap[str, str]
    allocation: _containers.ScalarMap[str, str]
    pool: str
    def __init__(self, position: _Optional[int] = ..., rule_id: _Optional[str] = ..., conditions: _Optional[_Mapping[str, str]] = ..., tags: _Optional[_Mapping[str, str]] = ..., allocation: _Optional[_Mapping[str, str]] = ..., pool: _Optional[str] = ...) -> None: ...

class ListAllocationRulesResponse(_message.Message):
    __slots__ = ("rules", "next_page_token", "rules_version")
    RULES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    RULES_VERSION_FIELD_NUMBER: _ClassVar[int]
    rules: _containers.RepeatedCompositeFieldContainer[AllocationRule]
    next_page_token: str
    rules_version: str
    def __init__(self, rules: _Optional[_Iterable[_Union[AllocationRule, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., rules_version: _Optional[str] = ...) -> None: ...
