"""`probe_target` for HTTP targets, over plain HTTP and over HTTPS with certificates from a test CA."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from blocks.health_targets import HealthTarget
from tests.tasks.servers import LocalCa, https_site, probe


def test_http_probe_of_a_200_is_ok_with_the_status_as_reason(site_url: str) -> None:
    result = probe(HealthTarget(name="site", kind="http", url=f"{site_url}/health"))

    assert (result.target, result.kind, result.ok, result.level) == ("site", "http", True, "ok")
    assert (result.reason, result.value) == ("HTTP 200", None)
    assert result.latency_ms is not None and result.latency_ms > 0


def test_http_probe_of_a_redirect_is_ok_without_following_it(site_url: str) -> None:
    result = probe(HealthTarget(name="site", kind="http", url=f"{site_url}/status/302"))

    assert (result.ok, result.level, result.reason) == (True, "ok", "HTTP 302")


def test_http_probe_of_a_500_fails_naming_the_status(site_url: str) -> None:
    result = probe(HealthTarget(name="site", kind="http", url=f"{site_url}/status/500"))

    assert (result.ok, result.level, result.reason) == (False, "critical", "HTTP 500, expected 2xx or 3xx")


def test_http_probe_with_expect_status_accepts_exactly_that_status(site_url: str) -> None:
    result = probe(HealthTarget(name="site", kind="http", url=f"{site_url}/status/503", expect_status=503))

    assert (result.ok, result.level, result.reason) == (True, "ok", "HTTP 503")


def test_http_probe_with_expect_status_fails_on_any_other_status_even_a_200(site_url: str) -> None:
    result = probe(HealthTarget(name="site", kind="http", url=f"{site_url}/health", expect_status=204))

    assert (result.ok, result.level, result.reason) == (False, "critical", "HTTP 200, expected 204")


@pytest.mark.parametrize(
    ("json_field", "json_value"),
    [("status", "ok"), ("db.up", "true"), ("db.pool", "4"), ("checks.0.state", "degraded")],
    ids=["top-level", "boolean-as-text", "number-as-text", "list-index"],
)
def test_http_probe_with_a_matching_json_field_is_ok(site_url: str, json_field: str, json_value: str) -> None:
    target = HealthTarget(name="site", kind="http", url=f"{site_url}/health", json_field=json_field, json_value=json_value)

    result = probe(target)

    assert (result.ok, result.level, result.reason) == (True, "ok", "HTTP 200")


def test_http_probe_with_a_mismatching_json_field_fails_naming_both_values(site_url: str) -> None:
    target = HealthTarget(name="site", kind="http", url=f"{site_url}/health", json_field="checks.0.state", json_value="ok")

    result = probe(target)

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason == "JSON checks.0.state is 'degraded', expected 'ok'"


def test_http_probe_with_a_json_field_the_reply_lacks_fails(site_url: str) -> None:
    target = HealthTarget(name="site", kind="http", url=f"{site_url}/health", json_field="db.replica", json_value="up")

    result = probe(target)

    assert (result.ok, result.reason) == (False, "JSON db.replica is None, expected 'up'")


def test_http_probe_with_a_json_field_on_a_page_that_is_not_json_fails(site_url: str) -> None:
    target = HealthTarget(name="site", kind="http", url=f"{site_url}/page", json_field="status", json_value="ok")

    result = probe(target)

    assert (result.ok, result.reason) == (False, "JSON status is None, expected 'ok'")


@pytest.mark.parametrize("url", ["htp:/nope", "http://", "example.com/health"])
def test_http_probe_of_a_malformed_url_fails_saying_so_whatever_the_target_is_called(url: str) -> None:
    first = probe(HealthTarget(name="site-a", kind="http", url=url))
    second = probe(HealthTarget(name="other.target", kind="http", url=url))

    assert (first.ok, first.level) == (False, "critical")
    assert first.reason.startswith("malformed URL: ")
    assert second.reason == first.reason
    assert "site-a" not in first.reason


def test_http_probe_of_a_closed_port_fails_saying_it_cannot_connect(closed_port: int) -> None:
    result = probe(HealthTarget(name="site", kind="http", url=f"http://127.0.0.1:{closed_port}/"))

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason == "cannot connect: All connection attempts failed"


def test_http_probe_of_a_server_that_hangs_past_the_timeout_fails_saying_timed_out(silent_port: int) -> None:
    target = HealthTarget(name="site", kind="http", url=f"http://127.0.0.1:{silent_port}/", timeout_seconds=0.5)

    result = probe(target)

    assert (result.ok, result.level, result.reason) == (False, "critical", "timed out after 0.5 s")
    assert 450 <= result.latency_ms < 2500


def test_http_probe_slower_than_the_latency_limit_is_a_warning_naming_the_latency(site_url: str) -> None:
    result = probe(HealthTarget(name="site", kind="http", url=f"{site_url}/health", latency_warning_ms=0.001))

    assert (result.ok, result.level) == (True, "warning")
    assert result.reason == f"slow: {result.latency_ms:.0f} ms (warning above 0.001 ms)"


@pytest.mark.parametrize(
    ("days", "ok", "level", "reason_tail"),
    [
        (30, True, "ok", ""),
        (10, True, "warning", " (warning threshold 14)"),
        (3, False, "critical", " (critical threshold 7)"),
    ],
    ids=["30-days-ok", "10-days-warning", "3-days-critical"],
)
def test_https_probe_grades_the_days_until_the_certificate_expires(
    local_ca: LocalCa, tmp_path: Path, days: int, ok: bool, level: str, reason_tail: str
) -> None:
    # An hour's margin keeps the day count from rounding across a boundary while the test runs.
    with https_site(local_ca, tmp_path, timedelta(days=days, hours=1)) as base_url:
        result = probe(HealthTarget(name="site", kind="http", url=f"{base_url}/health", ca_file=str(local_ca.path)))

    assert (result.ok, result.level) == (ok, level)
    assert result.value == pytest.approx(days + 1 / 24, abs=0.01)
    assert result.reason == f"HTTP 200, TLS certificate expires in {days}.0 days{reason_tail}"


def test_https_probe_of_an_expired_certificate_fails_the_handshake_saying_it_expired(local_ca: LocalCa, tmp_path: Path) -> None:
    with https_site(local_ca, tmp_path, timedelta(days=-1)) as base_url:
        result = probe(HealthTarget(name="site", kind="http", url=f"{base_url}/health", ca_file=str(local_ca.path)))

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason.startswith("cannot connect: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate has expired")


def test_https_probe_of_a_certificate_from_an_untrusted_authority_fails(local_ca: LocalCa, tmp_path: Path) -> None:
    with https_site(local_ca, tmp_path, timedelta(days=30)) as base_url:
        result = probe(HealthTarget(name="site", kind="http", url=f"{base_url}/health"))

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason.startswith("cannot connect: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
