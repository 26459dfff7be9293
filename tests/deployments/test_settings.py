"""Settings parse strictly and name every bad variable with what it accepts."""

import pytest

from deployments.settings import SettingsError, load_settings


def load(environ: dict, tmp_path, env_file_text: str | None = None):
    env_file = tmp_path / ".env"
    if env_file_text is not None:
        env_file.write_text(env_file_text)
    return load_settings({"VIGIA_HOME": str(tmp_path / "home"), **environ}, env_file)


def test_defaults_with_nothing_configured(tmp_path):
    settings = load({}, tmp_path)
    assert settings.database_url == f"sqlite:///{tmp_path / 'home' / 'vigia.db'}"
    assert (settings.timezone, settings.bind, settings.groq_base_url, settings.transcription_model) == (
        "America/Sao_Paulo",
        "127.0.0.1",
        "https://api.groq.com",
        "whisper-large-v3-turbo",
    )
    assert settings.backup_remote == str(tmp_path / "home" / "remote")
    assert settings.bind_is_loopback


def test_every_bad_value_is_named_with_what_it_accepts(tmp_path):
    with pytest.raises(SettingsError) as caught:
        load(
            {
                "VIGIA_TIMEZONE": "Mars/Olympus",
                "VIGIA_BIND": "everywhere",
                "VIGIA_DATABASE_URL": "mysql://x/y",
                "VIGIA_KEEP_TRANSCRIPTS": "perhaps",
                "VIGIA_BACKUP_REDIS": "redis://ok,http://bad",
            },
            tmp_path,
        )
    assert caught.value.problems == [
        "VIGIA_DATABASE_URL: invalid value (unsupported driver 'mysql' (expected sqlite or postgresql+psycopg)); "
        "accepts a SQLAlchemy URL: sqlite:///PATH or postgresql+psycopg://USER@HOST/DB",
        "VIGIA_TIMEZONE: invalid value (unknown time zone 'Mars/Olympus'); accepts an IANA time zone such as America/Sao_Paulo or UTC",
        "VIGIA_BIND: invalid value ('everywhere' is not an IP address); accepts an IP address such as 127.0.0.1 or 0.0.0.0, or localhost",
        "VIGIA_BACKUP_REDIS: item 2 is invalid (not a redis:// URL); accepts comma-separated redis:// or rediss:// URLs",
        "VIGIA_KEEP_TRANSCRIPTS: invalid value ('perhaps' is not a boolean); accepts true or false",
    ]


def test_a_secret_comes_from_its_file_and_never_from_both(tmp_path):
    secret = tmp_path / "groq.key"
    secret.write_text("gsk_from_file\n")
    assert load({"GROQ_API_KEY_FILE": str(secret)}, tmp_path).groq_key == "gsk_from_file"
    with pytest.raises(SettingsError, match="GROQ_API_KEY: set either GROQ_API_KEY or GROQ_API_KEY_FILE, not both"):
        load({"GROQ_API_KEY_FILE": str(secret), "GROQ_API_KEY": "gsk_env"}, tmp_path)
    with pytest.raises(SettingsError, match="GROQ_API_KEY_FILE: cannot read .*missing"):
        load({"GROQ_API_KEY_FILE": str(tmp_path / "missing")}, tmp_path)


def test_dotenv_fills_in_and_the_environment_wins(tmp_path):
    settings = load({"VIGIA_TIMEZONE": "UTC"}, tmp_path, "VIGIA_TIMEZONE=Europe/Lisbon\nGROQ_API_KEY=gsk_dotenv\n")
    assert (settings.timezone, settings.groq_key) == ("UTC", "gsk_dotenv")


def test_evolution_settings_go_together(tmp_path):
    with pytest.raises(SettingsError, match="EVOLUTION_API_KEY, EVOLUTION_INSTANCE: required together"):
        load({"EVOLUTION_API_URL": "https://evo.example"}, tmp_path)


def test_postgres_store_url_gets_the_psycopg_driver(tmp_path):
    settings = load({"VIGIA_DATABASE_URL": "postgresql://vigia:pw@db:5432/vigia"}, tmp_path)
    assert settings.database_url == "postgresql+psycopg://vigia:pw@db:5432/vigia"


SECRET_VALUES = {
    "VIGIA_WEBHOOK_TOKEN": "Wh-Secret-Token-0001",
    "EVOLUTION_API_KEY": "Evo-Secret-Key-0002",
    "GROQ_API_KEY": "gsk_Groq-Secret-0003",
    "VIGIA_DASHBOARD_PASSWORD": "Dash-Secret-0004",
    "PREFECT_SERVER_API_AUTH_STRING": "admin:Pf-Secret-0005",
    "VIGIA_HEARTBEAT_URL": "https://hc.example/ping/Hb-Secret-0006",
}
URL_PASSWORDS = ("Db-Secret-0007", "Bk-Secret-0008", "Rd-Secret-0009")


def settings_with_every_secret(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(SECRET_VALUES["VIGIA_WEBHOOK_TOKEN"] + "\n")
    environ = {name: value for name, value in SECRET_VALUES.items() if name != "VIGIA_WEBHOOK_TOKEN"}
    return load(
        {
            **environ,
            "VIGIA_WEBHOOK_TOKEN_FILE": str(token_file),
            "EVOLUTION_API_URL": "https://evo.example",
            "EVOLUTION_INSTANCE": "bot",
            "VIGIA_DATABASE_URL": f"postgresql://vigia:{URL_PASSWORDS[0]}@db.internal/vigia",
            "VIGIA_BACKUP_POSTGRES": f"postgresql://app:{URL_PASSWORDS[1]}@db.internal/app",
            "VIGIA_BACKUP_REDIS": f"redis://:{URL_PASSWORDS[2]}@cache.internal:6379/0",
        },
        tmp_path,
    )


def shown_secrets(text: str) -> list[str]:
    secrets = [value.split(":")[-1].split("/")[-1] for value in SECRET_VALUES.values()] + list(URL_PASSWORDS)
    return [secret for secret in secrets if secret in text]


def test_printing_or_logging_the_settings_shows_no_secret_but_says_which_are_set(tmp_path, caplog):
    import logging

    settings = settings_with_every_secret(tmp_path)
    logging.getLogger("vigia.test").warning("settings %s / %r", settings, settings)

    printed = repr(settings) + str(settings) + f"{settings}" + caplog.text

    assert settings.webhook_token == SECRET_VALUES["VIGIA_WEBHOOK_TOKEN"]
    assert shown_secrets(printed) == []
    assert "groq_key='***'" in printed and "database_url='postgresql+psycopg://vigia:***@db.internal/vigia'" in printed
    assert "evolution_url='https://evo.example'" in printed and "timezone='America/Sao_Paulo'" in printed


def test_a_traceback_with_the_settings_among_its_locals_shows_no_secret(tmp_path):
    import traceback

    def start(settings):
        raise RuntimeError("could not start")

    try:
        start(settings_with_every_secret(tmp_path))
    except RuntimeError as error:
        rendered = "".join(traceback.TracebackException.from_exception(error, capture_locals=True).format())

    assert "could not start" in rendered and "settings = Settings(" in rendered
    assert shown_secrets(rendered) == []


def test_the_secrets_list_for_masking_holds_every_secret_and_url_password(tmp_path):
    secrets = settings_with_every_secret(tmp_path).secrets()

    assert set(SECRET_VALUES.values()) | set(URL_PASSWORDS) <= set(secrets)


def test_retention_limits_are_whole_days_and_the_store_history_outlives_the_raw_probes(tmp_path):
    settings = load({}, tmp_path)
    assert (settings.keep_probes_days, settings.keep_history_days, settings.prefect_keep_runs_days, settings.prefect_keep_events_days) == (
        35,
        400,
        35,
        7,
    )
    with pytest.raises(SettingsError) as caught:
        load({"VIGIA_KEEP_PROBES_DAYS": "40", "VIGIA_KEEP_HISTORY_DAYS": "30", "VIGIA_PREFECT_KEEP_RUNS_DAYS": "0"}, tmp_path)
    assert caught.value.problems == [
        "VIGIA_PREFECT_KEEP_RUNS_DAYS: invalid value ('0' is not a whole number above 0); accepts a whole number of days above 0, e.g. 35",
        "VIGIA_KEEP_HISTORY_DAYS: shorter than VIGIA_KEEP_PROBES_DAYS; accepts at least as many days",
    ]
