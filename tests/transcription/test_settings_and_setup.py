"""Transcription settings are parsed strictly, and `vigia setup` writes them and generates the webhook token once."""

import pytest

from blocks.transcription import TranscriptionSettings
from deployments.settings import SettingsError, load_settings
from deployments.setup import run_setup


def settings_for(tmp_path, **environ):
    return load_settings({"VIGIA_HOME": str(tmp_path), **environ}, env_file=None)


def test_the_watchlist_templates_and_body_limit_are_read_from_the_environment(tmp_path):
    settings = settings_for(
        tmp_path,
        VIGIA_KEYWORDS="suicídio:emergency, refund : Warning",
        VIGIA_REPLY_TEMPLATE="Transcrição:\\n{transcript}",
        VIGIA_FAILURE_REPLY="Não deu.",
        VIGIA_WEBHOOK_MAX_BYTES="1048576",
    )
    assert settings.keywords == (("suicídio", "emergency"), ("refund", "warning"))
    assert (settings.reply_template, settings.failure_reply, settings.webhook_max_bytes) == (
        "Transcrição:\n{transcript}",
        "Não deu.",
        1048576,
    )


def test_bad_transcription_settings_stop_start_up_naming_each_variable(tmp_path):
    with pytest.raises(SettingsError) as caught:
        settings_for(tmp_path, VIGIA_KEYWORDS="refund:urgent,lonely", VIGIA_REPLY_TEMPLATE="{text}", VIGIA_WEBHOOK_MAX_BYTES="big")
    assert caught.value.problems == [
        "VIGIA_KEYWORDS: item 1 is invalid ('urgent' is not a severity); accepts comma-separated word:severity pairs, severity one of info, warning, critical, emergency",
        "VIGIA_KEYWORDS: item 2 is invalid ('lonely' is not word:severity); accepts comma-separated word:severity pairs, severity one of info, warning, critical, emergency",
        "VIGIA_REPLY_TEMPLATE: invalid value (it must contain {transcript} and no other field than {seconds}); accepts text containing {transcript} (and optionally {seconds}); \\n for a line break",
        "VIGIA_WEBHOOK_MAX_BYTES: invalid value ('big' is not a whole number above 0); accepts a whole number of bytes above 0, e.g. 33554432",
    ]


@pytest.mark.usefixtures("prefect_server")
def test_setup_writes_the_transcription_block_and_shows_a_generated_token_only_once(tmp_path):
    settings = settings_for(tmp_path, VIGIA_KEYWORDS="refund:warning", VIGIA_KEEP_TRANSCRIPTS="true")
    first = run_setup(settings, dashboard_url="http://127.0.0.1:8501", prefect_ui_url="http://127.0.0.1:4200")
    token = (tmp_path / "webhook-token").read_text().strip()
    assert [line for line in first.lines if token in line] == [
        f"webhook token generated (shown only now, kept in {tmp_path / 'webhook-token'}): {token} — "
        "send it from Evolution as the X-Vigia-Token webhook header (or as jwt_key)"
    ]
    block = TranscriptionSettings.load("default")
    assert (block.keywords, block.keep_transcripts, block.reply_template) == ({"refund": "warning"}, True, "🎙️ *Transcrição:*\n{transcript}")
    again = run_setup(settings, dashboard_url="http://127.0.0.1:8501", prefect_ui_url="http://127.0.0.1:4200")
    assert all(token not in line for line in again.lines)
    assert f"webhook token: the one generated earlier, in {tmp_path / 'webhook-token'}" in again.lines
    assert (tmp_path / "webhook-token").read_text().strip() == token


def test_groqs_limits_are_read_from_the_environment_and_a_bad_one_is_named(tmp_path):
    settings = settings_for(tmp_path, VIGIA_GROQ_MAX_CONCURRENCY="8", VIGIA_GROQ_RPM="400", VIGIA_GROQ_AUDIO_SECONDS_PER_HOUR="200000")
    assert (settings.groq_max_concurrency, settings.groq_rpm, settings.groq_audio_seconds_per_hour) == (8, 400, 200000)
    assert (settings_for(tmp_path).groq_max_concurrency, settings_for(tmp_path).groq_rpm) == (4, 20)  # Groq's free tier
    with pytest.raises(SettingsError) as caught:
        settings_for(tmp_path, VIGIA_GROQ_RPM="fast")
    assert caught.value.problems == [
        "VIGIA_GROQ_RPM: invalid value ('fast' is not a whole number above 0); accepts a whole number of requests per minute above 0, e.g. 20"
    ]


@pytest.mark.usefixtures("prefect_server")
def test_setup_creates_groqs_shared_limits_once_and_keeps_what_the_ui_changed(tmp_path):
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    async def limits() -> dict:
        async with get_client() as client:
            return {
                limit.name: (limit.limit, limit.slot_decay_per_second)
                for limit in await client.read_global_concurrency_limits()
                if limit.name.startswith("groq-")
            }

    async def edit_in_the_ui(name: str, limit: int) -> None:
        async with get_client() as client:
            await client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=limit))

    async def delete() -> None:
        async with get_client() as client:
            for name in await limits():
                await client.delete_global_concurrency_limit_by_name(name)

    asyncio.run(delete())
    settings = settings_for(tmp_path, VIGIA_GROQ_MAX_CONCURRENCY="6", VIGIA_GROQ_RPM="120", VIGIA_GROQ_AUDIO_SECONDS_PER_HOUR="7200")
    report = run_setup(settings, dashboard_url="http://127.0.0.1:8501", prefect_ui_url="http://127.0.0.1:4200")
    assert "concurrency limit groq-requests-per-minute: created, limit 120" in report.lines
    assert asyncio.run(limits()) == {
        "groq-concurrency": (6, 0.0),
        "groq-requests-per-minute": (120, 2.0),
        "groq-audio-seconds-per-hour": (7200, 2.0),
    }
    assert TranscriptionSettings.load("default").groq_requests_per_minute == 120  # each process's own bound when Prefect is away
    asyncio.run(edit_in_the_ui("groq-concurrency", 3))
    again = run_setup(settings, dashboard_url="http://127.0.0.1:8501", prefect_ui_url="http://127.0.0.1:4200")
    assert "concurrency limit groq-concurrency: kept, limit 3 (edit it on the UI's Concurrency page)" in again.lines
    asyncio.run(delete())
