"""One naming rule for a PostgreSQL or Redis URL: the same name as a backup source and as a health target."""

import asyncio

from deployments.backup_plans import plan_from_settings
from deployments.connection_names import name_connections
from deployments.settings import load_settings
from deployments.setup import derive_targets

POSTGRES = ("postgresql://app:pw@db1.internal:5432/app", "postgresql://app:pw@db2.internal:6543/app", "postgresql://u@db1.internal/n8n")
REDIS = ("redis://cache.internal:6379/0", "redis://cache.internal:6380/2")


def test_each_url_is_named_the_same_as_a_backup_source_and_as_a_health_target(tmp_path):
    settings = load_settings(
        {"VIGIA_HOME": str(tmp_path), "VIGIA_BACKUP_POSTGRES": ",".join(POSTGRES), "VIGIA_BACKUP_REDIS": ",".join(REDIS)},
        env_file=None,
    )
    sources = {
        source.name: source.url.get_secret_value()
        for source in plan_from_settings(settings).sources
        if source.kind in ("postgres", "redis")
    }
    targets = {
        target.name: target.dsn.get_secret_value()
        for target in asyncio.run(derive_targets(settings))
        if target.kind in ("postgres", "redis")
    }
    assert (
        sources
        == targets
        == {
            "postgres-app": POSTGRES[0],
            "postgres-db2.internal-6543-app": POSTGRES[1],
            "postgres-n8n": POSTGRES[2],
            "redis-cache.internal-6379-0": REDIS[0],
            "redis-cache.internal-6380-2": REDIS[1],
        }
    )


def test_a_lone_redis_is_redis_and_names_stay_unique_and_valid():
    assert name_connections("redis", ["redis://:secret@cache:6379/3"]) == [("redis", "redis://:secret@cache:6379/3")]
    twice = name_connections("postgres", ["postgresql://h/App DB", "postgresql://h/App DB"])
    assert [name for name, _ in twice] == ["postgres-app-db", "postgres-h-5432-app-db"]
    thrice = name_connections("postgres", ["postgresql://h/x"] * 3)
    assert [name for name, _ in thrice] == ["postgres-x", "postgres-h-5432-x", "postgres-h-5432-x-2"]
    assert len(name_connections("postgres", ["postgresql://h/" + "d" * 100])[0][0]) == 63
