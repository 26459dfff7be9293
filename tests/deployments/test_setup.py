"""`vigia setup` writes the Block documents from the settings, idempotently, keeping user targets."""

from pathlib import Path

import pytest

from blocks.evolution import EvolutionApi
from blocks.groq import GroqApi
from blocks.health_targets import HealthTarget, HealthTargets
from blocks.vigia import VigiaSettings
from deployments.settings import load_settings
from deployments.setup import run_setup

pytestmark = pytest.mark.usefixtures("prefect_server")


@pytest.fixture(autouse=True)
def no_targets_yet():
    """Start from an empty health-targets/default: the session's Prefect server is shared."""
    HealthTargets(targets=[]).save("default", overwrite=True)


def settings_for(tmp_path, **environ):
    return load_settings({"VIGIA_HOME": str(tmp_path), **environ}, env_file=None)


def setup(settings):
    return run_setup(settings, dashboard_url="http://127.0.0.1:8501", prefect_ui_url="http://127.0.0.1:4200")


def test_setup_derives_targets_from_the_settings_and_what_answers_on_localhost(tmp_path):
    settings = settings_for(
        tmp_path,
        EVOLUTION_API_URL="http://127.0.0.1:9/",
        EVOLUTION_API_KEY="evo-key-123",
        EVOLUTION_INSTANCE="bot",
        GROQ_API_KEY="gsk_test_key",
        VIGIA_HEARTBEAT_URL="http://127.0.0.1:9/ping",
    )
    report = setup(settings)
    targets = {t.name: t for t in HealthTargets.load("default").targets}
    assert sorted(targets) == [
        "backup",
        "cpu",
        "disk",
        "evolution",
        "groq",
        "memory",
        "postgres-postgres",
        "prefect",
        "redis",
        "transcription-queue",
    ]
    assert targets["disk"].url == str(tmp_path)
    assert {n for n, t in targets.items() if t.critical} == {"backup", "evolution", "groq", "postgres-postgres", "prefect", "redis"}
    assert EvolutionApi.load("default").api_key.get_secret_value() == "evo-key-123"
    assert GroqApi.load("default").transcription_model == "whisper-large-v3-turbo"
    assert VigiaSettings.load("default").heartbeat_url.get_secret_value() == "http://127.0.0.1:9/ping"
    assert all("evo-key-123" not in line and "gsk_test_key" not in line for line in report.lines)


def test_setup_twice_changes_nothing_and_keeps_targets_added_by_hand(tmp_path):
    settings = settings_for(tmp_path)
    setup(settings)
    first = HealthTargets.load("default")
    HealthTargets(targets=[*first.targets, HealthTarget(name="landing", kind="http", url="https://bot.example")]).save(
        "default", overwrite=True
    )
    setup(settings)
    setup(settings)
    again = HealthTargets.load("default")
    assert [t.name for t in again.targets] == [t.name for t in first.targets] + ["landing"]
    assert again.targets[-1].managed is False


def test_setup_validates_and_stores_the_apprise_routes(tmp_path):
    from blocks.alert_routes import AlertRoutes

    config = tmp_path / "alerts.yaml"
    config.write_text((Path(__file__).resolve().parents[2] / "alerts.example.yaml").read_text())
    report = setup(settings_for(tmp_path, VIGIA_APPRISE_CONFIG=str(config)))
    routes = AlertRoutes.load("default")
    assert routes.config.get_secret_value() == config.read_text()
    assert (
        f"alert-routes/default: 4 channels from {config} (info → 1, warning → 1, critical → 2, emergency → 4, report → 1)" in report.lines
    )
    assert all("app-password" not in line for line in report.lines)
    AlertRoutes().save("default", overwrite=True)


def test_setup_refuses_routes_apprise_cannot_load(tmp_path):
    from clients.notify import NotifyConfigError

    config = tmp_path / "alerts.txt"
    config.write_text("critical tgram://nothing-here\n")
    with pytest.raises(NotifyConfigError, match="Apprise loaded no notification target"):
        setup(settings_for(tmp_path, VIGIA_APPRISE_CONFIG=str(config)))


def test_setup_keeps_database_and_redis_passwords_out_of_what_the_api_shows(tmp_path, prefect_server):
    import httpx

    settings = settings_for(
        tmp_path,
        VIGIA_BACKUP_POSTGRES="postgresql://app:Pg-Setup-Secret-1@db.internal:5432/app",
        VIGIA_BACKUP_REDIS="redis://:Rd-Setup-Secret-2@cache.internal:6379/0",
    )
    setup(settings)
    first = HealthTargets.load("default")
    hand_made = HealthTarget(name="replica", kind="postgres", dsn="postgresql://ro:Pg-Hand-Secret-3@replica/app")
    HealthTargets(targets=[*first.targets, hand_made]).save("default", overwrite=True)
    setup(settings)

    body = {"block_types": {"slug": {"any_": ["health-targets"]}}, "block_documents": {"name": {"any_": ["default"]}}}
    shown = httpx.post(f"{prefect_server}/block_documents/filter", json=body, timeout=30).text
    dsns = {t.name: t.dsn.get_secret_value() for t in HealthTargets.load("default").targets if t.dsn}

    assert [s for s in ("Pg-Setup-Secret-1", "Rd-Setup-Secret-2", "Pg-Hand-Secret-3") if s in shown] == []
    assert dsns["postgres-app"] == "postgresql://app:Pg-Setup-Secret-1@db.internal:5432/app"
    assert dsns["redis"] == "redis://:Rd-Setup-Secret-2@cache.internal:6379/0"
    assert dsns["replica"] == "postgresql://ro:Pg-Hand-Secret-3@replica/app"
