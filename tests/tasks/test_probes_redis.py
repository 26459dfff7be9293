"""`probe_target` for Redis and queue targets, against real redis-servers on 127.0.0.1."""

from __future__ import annotations

import re

import pytest
import redis

from blocks.health_targets import HealthTarget
from tests.tasks.servers import LOOPBACK, REDIS_PASSWORD, probe


def test_redis_probe_without_maxmemory_is_ok_reporting_memory_used(redis_url: str) -> None:
    result = probe(HealthTarget(name="cache", kind="redis", dsn=redis_url))

    assert (result.ok, result.level, result.value) == (True, "ok", None)
    assert re.fullmatch(r"\d+ MiB used, no maxmemory", result.reason)


def test_redis_probe_with_maxmemory_reports_memory_as_a_share_and_grades_it(password_redis_port: int) -> None:
    admin = redis.Redis(host=LOOPBACK, port=password_redis_port, password=REDIS_PASSWORD)
    admin.config_set("maxmemory", str(512 * 2**20))
    dsn = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{password_redis_port}/0"
    try:
        ok = probe(HealthTarget(name="cache", kind="redis", dsn=dsn))
        warned = probe(HealthTarget(name="cache", kind="redis", dsn=dsn, warning_at=0.01))
    finally:
        admin.config_set("maxmemory", "0")
        admin.close()

    assert (ok.ok, ok.level, ok.reason) == (True, "ok", f"memory {ok.value:.0f}% of maxmemory")
    assert 0 < ok.value < 80
    assert (warned.ok, warned.level) == (True, "warning")
    assert warned.reason == f"memory {warned.value:.0f}% of maxmemory (warning threshold 0.01)"


def test_redis_probe_on_a_closed_port_is_down_saying_it_cannot_connect(closed_port: int) -> None:
    result = probe(HealthTarget(name="cache", kind="redis", dsn=f"redis://:Rd-Passw0rd-123@127.0.0.1:{closed_port}/0"))

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason.startswith(f"cannot connect: Error 111 connecting to 127.0.0.1:{closed_port}.")
    assert "Rd-Passw0rd-123" not in result.reason


def test_redis_probe_against_a_server_that_never_answers_times_out(silent_port: int) -> None:
    result = probe(HealthTarget(name="cache", kind="redis", dsn=f"redis://127.0.0.1:{silent_port}/0", timeout_seconds=0.5))

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason == f"timed out: Timeout reading from 127.0.0.1:{silent_port}"


@pytest.mark.parametrize("kind", ["redis", "queue"])
def test_redis_probe_without_the_password_a_server_wants_says_it_wants_a_password(password_redis_port: int, kind: str) -> None:
    target = HealthTarget(name="cache", kind=kind, dsn=f"redis://127.0.0.1:{password_redis_port}/0", queue_key="jobs")

    result = probe(target)

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason.startswith("Redis wants a password (NOAUTH): ")


@pytest.mark.parametrize("kind", ["redis", "queue"])
def test_redis_probe_with_a_wrong_password_says_authentication_failed_without_the_password(password_redis_port: int, kind: str) -> None:
    dsn = f"redis://:Wr0ng-Redis-Password@127.0.0.1:{password_redis_port}/0"

    result = probe(HealthTarget(name="cache", kind=kind, dsn=dsn, queue_key="jobs"))

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason == "authentication failed: invalid username-password pair or user is disabled."
    assert "Wr0ng-Redis-Password" not in result.reason


def test_redis_probe_with_the_right_password_is_ok(password_redis_port: int) -> None:
    result = probe(HealthTarget(name="cache", kind="redis", dsn=f"redis://:{REDIS_PASSWORD}@127.0.0.1:{password_redis_port}/0"))

    assert (result.ok, result.level) == (True, "ok")
    assert re.fullmatch(r"\d+ MiB used, no maxmemory", result.reason)


def test_redis_probe_of_a_malformed_url_is_down_saying_malformed_without_the_password() -> None:
    result = probe(HealthTarget(name="cache", kind="redis", dsn="redis://:Rd-Passw0rd-123@127.0.0.1:notaport/0"))

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason == "malformed Redis URL: Port could not be cast to integer value as 'notaport'"


def test_queue_probe_of_a_missing_list_is_ok_with_zero_items(redis_url: str) -> None:
    result = probe(HealthTarget(name="jobs", kind="queue", dsn=redis_url, queue_key="jobs"))

    assert (result.ok, result.level, result.value, result.reason) == (True, "ok", 0.0, "0 items in jobs")


def test_queue_probe_at_the_warning_threshold_is_still_ok(redis_url: str) -> None:
    redis.Redis.from_url(redis_url).rpush("jobs", *range(100))

    result = probe(HealthTarget(name="jobs", kind="queue", dsn=redis_url, queue_key="jobs"))

    assert (result.ok, result.level, result.value, result.reason) == (True, "ok", 100.0, "100 items in jobs")


def test_queue_probe_over_the_warning_threshold_is_a_warning_that_stays_up(redis_url: str) -> None:
    redis.Redis.from_url(redis_url).rpush("jobs", *range(150))

    result = probe(HealthTarget(name="jobs", kind="queue", dsn=redis_url, queue_key="jobs"))

    assert (result.ok, result.level, result.value) == (True, "warning", 150.0)
    assert result.reason == "150 items in jobs (warning threshold 100)"


def test_queue_probe_of_a_stream_counts_its_entries(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    for index in range(120):
        client.xadd("events", {"n": index})

    result = probe(HealthTarget(name="events", kind="queue", dsn=redis_url, queue_key="events"))

    assert (result.ok, result.level, result.value, result.reason) == (True, "warning", 120.0, "120 items in events (warning threshold 100)")


def test_queue_probe_of_a_key_that_is_no_queue_fails_naming_its_type(redis_url: str) -> None:
    redis.Redis.from_url(redis_url).set("jobs", "1")

    result = probe(HealthTarget(name="jobs", kind="queue", dsn=redis_url, queue_key="jobs"))

    assert (result.ok, result.level, result.reason) == (False, "critical", "key 'jobs' is a string, not a list, stream or sorted set")
