"""Webhook signing: the HMAC over timestamp and body, the five-minute window and the secrets file."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from services.ingest.importer import InvalidTenant, validate_tenant
from services.ingest.signing import (
    SIGNATURE_HEADER,
    SOURCE_HEADER,
    TIMESTAMP_HEADER,
    SecretsFileError,
    SignatureRejected,
    WebhookSource,
    compute_signature,
    load_sources,
    signed_headers,
    verify_request,
)

SECRET = b"s" * 40
NOW = 1_790_000_000.0
BODY = b'{"data": []}'
SOURCES = {"meter": WebhookSource(name="meter", secret=SECRET, tenants=frozenset({"acme"}))}


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET, b"1790000000." + BODY, hashlib.sha256).hexdigest()
    assert compute_signature(SECRET, "1790000000", BODY) == f"sha256={expected}"


def test_signed_request_verifies() -> None:
    headers = signed_headers("meter", SECRET, BODY, now=NOW)
    assert verify_request(SOURCES, headers, BODY, now=NOW + 299).name == "meter"


@pytest.mark.parametrize("skew", [301, -301, 86_400])
def test_stale_or_future_timestamp_is_rejected(skew: int) -> None:
    headers = signed_headers("meter", SECRET, BODY, now=NOW)
    with pytest.raises(SignatureRejected, match="at most 300 s"):
        verify_request(SOURCES, headers, BODY, now=NOW + skew)


def test_changed_body_is_rejected() -> None:
    headers = signed_headers("meter", SECRET, BODY, now=NOW)
    with pytest.raises(SignatureRejected, match="does not match"):
        verify_request(SOURCES, headers, BODY + b" ", now=NOW)


def test_other_secret_is_rejected() -> None:
    headers = signed_headers("meter", b"t" * 40, BODY, now=NOW)
    with pytest.raises(SignatureRejected, match="does not match"):
        verify_request(SOURCES, headers, BODY, now=NOW)


def test_unknown_source_is_rejected() -> None:
    headers = signed_headers("stranger", SECRET, BODY, now=NOW)
    with pytest.raises(SignatureRejected, match="unknown webhook source 'stranger'"):
        verify_request(SOURCES, headers, BODY, now=NOW)


@pytest.mark.parametrize("missing", [SOURCE_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER])
def test_missing_header_is_named(missing: str) -> None:
    headers = signed_headers("meter", SECRET, BODY, now=NOW)
    del headers[missing]
    with pytest.raises(SignatureRejected, match=missing):
        verify_request(SOURCES, headers, BODY, now=NOW)


def test_timestamp_must_be_whole_seconds() -> None:
    headers = signed_headers("meter", SECRET, BODY, now=NOW) | {TIMESTAMP_HEADER: "1790000000.5"}
    with pytest.raises(SignatureRejected, match="whole seconds"):
        verify_request(SOURCES, headers, BODY, now=NOW)


def test_tenant_rules() -> None:
    limited = WebhookSource(name="a", secret=SECRET, tenants=frozenset({"acme"}))
    anyone = WebhookSource(name="b", secret=SECRET, tenants=frozenset({"*"}))
    default_only = WebhookSource(name="c", secret=SECRET, tenants=None)
    assert limited.may_write("acme", "default")
    assert not limited.may_write("globex", "default")
    assert anyone.may_write("globex", "default")
    assert default_only.may_write("default", "default")
    assert not default_only.may_write("acme", "default")


def test_repr_hides_the_secret() -> None:
    assert "sss" not in repr(SOURCES["meter"])


def test_secrets_file(tmp_path: Path) -> None:
    (tmp_path / "gpu.secret").write_text("g" * 32 + "\n")
    path = tmp_path / "sources.yaml"
    path.write_text(
        f"sources:\n  meter:\n    secret: {'m' * 32}\n    tenants: [acme]\n  gpu:\n    secret_file: gpu.secret\n"
    )
    sources = load_sources(path)
    assert sources["meter"].secret == b"m" * 32
    assert sources["meter"].tenants == frozenset({"acme"})
    assert sources["gpu"].secret == b"g" * 32  # read relative to the secrets file, newline stripped
    assert sources["gpu"].tenants is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sources:\n  meter:\n    secret: short\n", "at least 32 characters"),
        ("sources:\n  meter:\n    tenants: [a]\n", "exactly one of"),
        (f"sources:\n  meter:\n    secret: {'m' * 32}\n    tenant: [a]\n", "unknown keys tenant"),
        (f"sources:\n  meter:\n    secret: {'m' * 32}\n    tenants: acme\n", "list of tenant names"),
        ("sources: {}\n", "non-empty 'sources'"),
        ("sources: [\n", "not valid YAML"),
    ],
)
def test_invalid_secrets_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    with pytest.raises(SecretsFileError, match=message) as raised:
        load_sources(path)
    assert "m" * 32 not in str(raised.value)


@pytest.mark.parametrize("tenant", ["acme", "team.ml-platform", "org:42", "a" * 128])
def test_valid_tenant_names(tenant: str) -> None:
    assert validate_tenant(tenant) == tenant


@pytest.mark.parametrize("tenant", ["", "-acme", "a b", "a" * 129, "acme\n", "../etc", "ac/me"])
def test_invalid_tenant_names(tenant: str) -> None:
    with pytest.raises(InvalidTenant, match="1 to 128"):
        validate_tenant(tenant)
