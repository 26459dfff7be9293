"""`vigia setup` derives a cpu target always, and a `queue` target for each key in VIGIA_QUEUE_KEYS, probed on a real Redis."""

import asyncio

import pytest
import redis

from deployments.settings import SettingsError, load_settings
from deployments.setup import derive_targets
from tests.tasks.servers import probe


def targets_for(tmp_path, **environ):
    settings = load_settings({"VIGIA_HOME": str(tmp_path), **environ}, env_file=None)
    return {target.name: target for target in asyncio.run(derive_targets(settings))}


def test_every_setup_watches_the_hosts_cpu(tmp_path):
    cpu = targets_for(tmp_path)["cpu"]

    assert (cpu.kind, cpu.managed, cpu.critical, cpu.thresholds()) == ("cpu", True, False, (80.0, 90.0))


def test_each_queue_key_is_a_queue_target_on_its_redis_and_its_length_is_the_backlog(tmp_path, redis_url):
    redis.Redis.from_url(redis_url).rpush("bull:mail:wait", *range(150))
    other = redis_url.rsplit("/", 1)[0] + "/13"

    targets = targets_for(tmp_path, VIGIA_BACKUP_REDIS=redis_url, VIGIA_QUEUE_KEYS=f"bull:mail:wait, {other}#Jobs Delayed")
    queues = {name: (t.dsn.get_secret_value(), t.queue_key) for name, t in targets.items() if t.kind == "queue"}
    result = probe(targets["queue-bull-mail-wait"])

    assert queues == {
        "transcription-queue": (f"sqlite:///{tmp_path}/vigia.db", "voice-notes"),
        "queue-bull-mail-wait": (redis_url, "bull:mail:wait"),
        "queue-jobs-delayed": (other, "Jobs Delayed"),
    }
    assert (result.ok, result.level, result.value, result.reason) == (
        True,
        "warning",
        150.0,
        "150 items in bull:mail:wait (warning threshold 100)",
    )


def test_a_bare_queue_key_without_a_backup_redis_is_read_on_the_local_redis(tmp_path):
    queue = targets_for(tmp_path, VIGIA_QUEUE_KEYS="jobs")["queue-jobs"]

    assert (queue.dsn.get_secret_value(), queue.queue_key) == ("redis://127.0.0.1:6379/0", "jobs")


def test_a_queue_url_must_be_redis_and_name_its_key_and_its_password_is_masked(tmp_path):
    with pytest.raises(SettingsError) as caught:
        load_settings({"VIGIA_HOME": str(tmp_path), "VIGIA_QUEUE_KEYS": "redis://:Qu-Secret-1@h:6379/0,http://h/x#k"}, env_file=None)
    accepts = "accepts comma-separated Redis keys, or redis://HOST:PORT/DB#KEY for a key on another Redis"
    assert caught.value.problems == [
        f"VIGIA_QUEUE_KEYS: item 1 is invalid (no #KEY after the Redis URL); {accepts}",
        f"VIGIA_QUEUE_KEYS: item 2 is invalid (not a redis:// URL); {accepts}",
    ]
    settings = load_settings({"VIGIA_HOME": str(tmp_path), "VIGIA_QUEUE_KEYS": "redis://:Qu-Secret-1@h:6379/0#jobs"}, env_file=None)
    assert "Qu-Secret-1" not in repr(settings) and "Qu-Secret-1" in settings.secrets()
