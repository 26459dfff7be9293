"""The backup-plan Block through the real Prefect API: source URLs are stored, loaded back whole, and never shown."""

from __future__ import annotations

import httpx

from blocks.backup_plan import BackupPlan, BackupSource

POSTGRES_URL = "postgresql://app:pg-Pass-4471@db:5432/n8n"
REDIS_URL = "redis://:redis-Pass-9902@cache:6379/5"


def test_source_passwords_are_masked_by_the_prefect_api_and_loaded_back_whole(prefect_server, tmp_path):
    plan = BackupPlan(
        local_dir=str(tmp_path),
        sources=[
            BackupSource(name="postgres-n8n", kind="postgres", url=POSTGRES_URL),
            BackupSource(name="redis", kind="redis", url=REDIS_URL),
            BackupSource(name="files", kind="files", paths=["/etc/hosts"]),
        ],
    )
    plan.save("secrets-test", overwrite=True)

    listed = httpx.post(f"{prefect_server}/block_documents/filter", json={"include_secrets": False}, timeout=30)
    listed.raise_for_status()
    [document] = [doc for doc in listed.json() if doc["name"] == "secrets-test"]
    assert "pg-Pass-4471" not in listed.text and "redis-Pass-9902" not in listed.text
    assert document["data"]["sources"][0] == {"name": "postgres-n8n", "kind": "postgres", "paths": []}
    assert set(document["data"]["source_urls"]) == {"postgres-n8n", "redis"}

    loaded = BackupPlan.load("secrets-test")
    assert [(source.name, source.url and source.url.get_secret_value()) for source in loaded.sources] == [
        ("postgres-n8n", POSTGRES_URL),
        ("redis", REDIS_URL),
        ("files", None),
    ]
