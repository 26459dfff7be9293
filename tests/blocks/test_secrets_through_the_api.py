"""What the Prefect API (and so the Blocks page) shows of every Block: secrets masked, the rest readable."""

import httpx
import pytest

from blocks.alert_routes import AlertRoutes
from blocks.evolution import EvolutionApi
from blocks.groq import GroqApi
from blocks.health_targets import HealthTarget, HealthTargets
from blocks.vigia import VigiaSettings

pytestmark = pytest.mark.usefixtures("prefect_server")

PG_PASSWORD = "Pg-Secret-4kQz"
REDIS_PASSWORD = "Rd-Secret-9wXy"


def block_documents_as_the_api_returns_them(api_url: str, slug: str) -> str:
    """The raw body of POST /block_documents/filter for one block type, without include_secrets."""
    body = {"block_types": {"slug": {"any_": [slug]}}}
    response = httpx.post(f"{api_url}/block_documents/filter", json=body, timeout=30)
    response.raise_for_status()
    assert response.json(), f"no {slug} document was returned"
    return response.text


def test_health_target_passwords_are_masked_by_the_api_and_still_load(prefect_server):
    HealthTargets(
        targets=[
            HealthTarget(name="db", kind="postgres", dsn=f"postgresql://app:{PG_PASSWORD}@db/app", critical=True),
            HealthTarget(name="jobs", kind="queue", dsn=f"redis://:{REDIS_PASSWORD}@cache:6379/0", queue_key="jobs"),
            HealthTarget(name="bot", kind="http", url="https://bot.example/health", depends_on=["db"]),
        ]
    ).save("masked", overwrite=True)

    shown = block_documents_as_the_api_returns_them(prefect_server, "health-targets")
    loaded = HealthTargets.load("masked")

    assert PG_PASSWORD not in shown and REDIS_PASSWORD not in shown
    assert '"name":"db"' in shown.replace(" ", "") and "https://bot.example/health" in shown
    by_name = {target.name: target for target in loaded.targets}
    assert by_name["db"].dsn.get_secret_value() == f"postgresql://app:{PG_PASSWORD}@db/app"
    assert by_name["jobs"].dsn.get_secret_value() == f"redis://:{REDIS_PASSWORD}@cache:6379/0"
    assert by_name["bot"].dsn is None


def test_a_target_added_in_the_ui_takes_its_dsn_from_the_credentials_and_the_masked_ones_are_kept(prefect_server):
    HealthTargets(targets=[HealthTarget(name="db", kind="postgres", dsn=f"postgresql://app:{PG_PASSWORD}@db/app")]).save(
        "from-ui", overwrite=True
    )
    document = httpx.post(
        f"{prefect_server}/block_documents/filter",
        json={
            "block_types": {"slug": {"any_": ["health-targets"]}},
            "block_documents": {"name": {"any_": ["from-ui"]}},
        },
        timeout=30,
    ).json()[0]
    # What the Blocks page sends back: the data it was shown (masked), one target and its credential added.
    data = document["data"]
    data["targets"].append({"name": "cache", "kind": "redis"})
    data["credentials"]["cache"] = f"redis://:{REDIS_PASSWORD}@cache:6379/0"
    response = httpx.patch(f"{prefect_server}/block_documents/{document['id']}", json={"data": data}, timeout=30)
    response.raise_for_status()

    loaded = HealthTargets.load("from-ui")

    assert {t.name: t.dsn.get_secret_value() for t in loaded.targets} == {
        "db": f"postgresql://app:{PG_PASSWORD}@db/app",
        "cache": f"redis://:{REDIS_PASSWORD}@cache:6379/0",
    }
    shown = block_documents_as_the_api_returns_them(prefect_server, "health-targets")
    assert PG_PASSWORD not in shown and REDIS_PASSWORD not in shown


def test_saving_again_keeps_the_credentials_and_drops_those_of_removed_targets(prefect_server):
    first = HealthTargets(
        targets=[
            HealthTarget(name="db", kind="postgres", dsn=f"postgresql://app:{PG_PASSWORD}@db/app"),
            HealthTarget(name="old", kind="redis", dsn=f"redis://:{REDIS_PASSWORD}@old:6379/0"),
        ]
    )
    first.save("resaved", overwrite=True)
    kept = [target for target in HealthTargets.load("resaved").targets if target.name != "old"]
    HealthTargets(targets=kept).save("resaved", overwrite=True)

    loaded = HealthTargets.load("resaved")

    assert [t.name for t in loaded.targets] == ["db"]
    assert loaded.targets[0].dsn.get_secret_value() == f"postgresql://app:{PG_PASSWORD}@db/app"
    assert loaded.credentials.get_secret_value() == {"db": f"postgresql://app:{PG_PASSWORD}@db/app"}


def test_a_target_never_prints_or_dumps_its_dsn():
    target = HealthTarget(name="db", kind="postgres", dsn=f"postgresql://app:{PG_PASSWORD}@db/app")

    assert PG_PASSWORD not in repr(target) + str(target.model_dump(mode="json")) + target.model_dump_json()
    assert PG_PASSWORD not in repr(HealthTargets(targets=[target]))


@pytest.mark.parametrize(
    "block, slug, secret",
    [
        (
            VigiaSettings(
                home="/tmp/v",
                database_url=f"postgresql+psycopg://vigia:{PG_PASSWORD}@db/vigia",
                heartbeat_url="https://hc.example/ping/Hb-Secret-1a2b",
            ),
            "vigia-settings",
            PG_PASSWORD,
        ),
        (
            VigiaSettings(home="/tmp/v", database_url="sqlite:////tmp/v.db", heartbeat_url="https://hc.example/ping/Hb-Secret-1a2b"),
            "vigia-settings",
            "Hb-Secret-1a2b",
        ),
        (GroqApi(api_key="gsk_Groq-Secret-5c6d"), "groq", "Groq-Secret-5c6d"),
        (EvolutionApi(url="https://evo.example", api_key="Evo-Secret-7e8f", instance="bot"), "evolution-api", "Evo-Secret-7e8f"),
        (AlertRoutes(config="urls:\n  - tgram://Tg-Secret-0a1b/123:\n      tag: critical\n"), "alert-routes", "Tg-Secret-0a1b"),
    ],
    ids=["store-password", "heartbeat-url", "groq-key", "evolution-key", "apprise-config"],
)
def test_every_other_block_secret_is_masked_by_the_api(prefect_server, block, slug, secret):
    block.save(f"masked-{slug}", overwrite=True)

    assert secret not in block_documents_as_the_api_returns_them(prefect_server, slug)


def test_a_document_saved_before_credentials_existed_loads_and_saving_it_hides_the_dsn(prefect_server):
    HealthTargets(targets=[HealthTarget(name="memory", kind="memory")]).save("old-format", overwrite=True)
    document = httpx.post(
        f"{prefect_server}/block_documents/filter",
        json={
            "block_types": {"slug": {"any_": ["health-targets"]}},
            "block_documents": {"name": {"any_": ["old-format"]}},
        },
        timeout=30,
    ).json()[0]
    old_data = {"targets": [{"name": "db", "kind": "postgres", "dsn": f"postgresql://app:{PG_PASSWORD}@db/app"}]}
    httpx.patch(
        f"{prefect_server}/block_documents/{document['id']}", json={"data": old_data, "merge_existing_data": False}, timeout=30
    ).raise_for_status()

    loaded = HealthTargets.load("old-format")
    loaded.save("old-format", overwrite=True)

    assert loaded.targets[0].dsn.get_secret_value() == f"postgresql://app:{PG_PASSWORD}@db/app"
    assert PG_PASSWORD not in block_documents_as_the_api_returns_them(prefect_server, "health-targets")
    assert HealthTargets.load("old-format").targets[0].dsn.get_secret_value() == f"postgresql://app:{PG_PASSWORD}@db/app"
