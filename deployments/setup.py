"""`vigia setup`: turn the settings into Block documents named `default`, idempotently."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from blocks.alert_routes import AlertRoutes
from blocks.evolution import EvolutionApi
from blocks.groq import GroqApi
from blocks.health_targets import HealthTarget, HealthTargets
from blocks.transcription import TranscriptionSettings
from blocks.vigia import VigiaSettings
from clients import postgres, redis, tcp
from clients.errors import ClientError
from clients.notify import SEVERITIES, Router, read_config
from deployments.backup_plans import save_backup_plan
from deployments.connection_names import name_connections, slug_name
from deployments.settings import Settings
from deployments.tokens import TOKEN_FILE, create_token_file, read_token_file
from deployments.work_pool import ensure_work_pool
from tasks.groq_gate import GroqLimits, ensure_groq_limits

LOCAL_POSTGRES = "postgresql://127.0.0.1:5432/postgres"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"
BLOCK_NAME = "default"


@dataclass(frozen=True)
class SetupReport:
    """What `vigia setup` wrote: one line per Block document."""

    lines: list[str]


def run_setup(settings: Settings, *, dashboard_url: str, prefect_ui_url: str) -> SetupReport:
    """Create or update every Block document from the settings; user-added targets are kept."""
    lines = []
    VigiaSettings(
        home=str(settings.home),
        database_url=settings.database_url,
        timezone=settings.timezone,
        heartbeat_url=settings.heartbeat_url,
        dashboard_url=dashboard_url,
        prefect_ui_url=prefect_ui_url,
        response_target_seconds=settings.response_target_seconds,
        bot_silent_minutes=settings.bot_silent_minutes,
        unanswered_alert_percent=settings.unanswered_alert_percent,
        keep_probes_days=settings.keep_probes_days,
        keep_history_days=settings.keep_history_days,
        keep_transcripts=settings.keep_transcripts,
        keep_transcripts_days=settings.keep_transcripts_days,
    ).save(BLOCK_NAME, overwrite=True)
    lines.append(f"vigia-settings/{BLOCK_NAME}: store, home {settings.home}, time zone {settings.timezone}")
    if settings.evolution_url:
        EvolutionApi(url=settings.evolution_url, api_key=settings.evolution_key, instance=settings.evolution_instance).save(
            BLOCK_NAME, overwrite=True
        )
        lines.append(f"evolution-api/{BLOCK_NAME}: {settings.evolution_url}, instance {settings.evolution_instance}")
    if settings.groq_key:
        GroqApi(
            api_key=settings.groq_key,
            base_url=settings.groq_base_url,
            transcription_model=settings.transcription_model,
            transcription_language=settings.transcription_language,
        ).save(BLOCK_NAME, overwrite=True)
        lines.append(f"groq/{BLOCK_NAME}: {settings.groq_base_url}, model {settings.transcription_model}")
    lines.append(_save_alert_routes(settings))
    lines.append(save_backup_plan(settings))
    lines.append(_save_transcription(settings))
    lines += asyncio.run(
        ensure_groq_limits(GroqLimits(settings.groq_max_concurrency, settings.groq_rpm, settings.groq_audio_seconds_per_hour))
    )
    lines.append(_ensure_webhook_token(settings))
    lines.append(asyncio.run(ensure_work_pool()))
    derived = asyncio.run(derive_targets(settings))
    kept = [target for target in _existing_targets() if not target.managed and target.name not in {t.name for t in derived}]
    HealthTargets(targets=derived + kept).save(BLOCK_NAME, overwrite=True)
    lines.append(
        f"health-targets/{BLOCK_NAME}: {len(derived) + len(kept)} targets "
        f"({', '.join(t.name for t in derived)}{'; kept yours: ' + ', '.join(t.name for t in kept) if kept else ''})"
    )
    return SetupReport(lines)


def _save_transcription(settings: Settings) -> str:
    """Store the transcription settings (templates, watchlist, what is kept) as transcription/default."""
    defaults = TranscriptionSettings()
    TranscriptionSettings(
        reply_template=settings.reply_template or defaults.reply_template,
        failure_reply=defaults.failure_reply if settings.failure_reply is None else settings.failure_reply,
        keywords=dict(settings.keywords),
        keep_transcripts=settings.keep_transcripts,
        groq_max_concurrency=settings.groq_max_concurrency,
        groq_requests_per_minute=settings.groq_rpm,
        groq_audio_seconds_per_hour=settings.groq_audio_seconds_per_hour,
    ).save(BLOCK_NAME, overwrite=True)
    kept = "kept" if settings.keep_transcripts else "deleted after the reply"
    return f"transcription/{BLOCK_NAME}: {len(settings.keywords)} watched words; transcripts and audio {kept}"


def _ensure_webhook_token(settings: Settings) -> str:
    """Generate the webhook token on first setup when VIGIA_WEBHOOK_TOKEN is unset; show it this once."""
    if settings.webhook_token:
        return "webhook token: from VIGIA_WEBHOOK_TOKEN"
    if read_token_file(settings.home):
        return f"webhook token: the one generated earlier, in {settings.home / TOKEN_FILE}"
    token = create_token_file(settings.home)
    return (
        f"webhook token generated (shown only now, kept in {settings.home / TOKEN_FILE}): {token} — "
        "send it from Evolution as the X-Vigia-Token webhook header (or as jwt_key)"
    )


def _save_alert_routes(settings: Settings) -> str:
    """Validate VIGIA_APPRISE_CONFIG and store it as alert-routes/default (or log-only routes).

    Raises:
        NotifyConfigError: when Apprise finds no notification target in the file.
    """
    if settings.apprise_config is None:
        AlertRoutes().save(BLOCK_NAME, overwrite=True)
        return f"alert-routes/{BLOCK_NAME}: no channel configured (VIGIA_APPRISE_CONFIG unset): alerts go to the log"
    path = settings.apprise_config
    text, config_format = read_config(path)
    router = Router(text, f"VIGIA_APPRISE_CONFIG {path}", config_format)
    routes = AlertRoutes(config=text, config_format=config_format, source=f"VIGIA_APPRISE_CONFIG {path}")
    routes.save(BLOCK_NAME, overwrite=True)
    reach = ", ".join(f"{tag} → {len(router.channels(tag))}" for tag in SEVERITIES)
    return f"alert-routes/{BLOCK_NAME}: {len(router)} channels from {path} ({reach})"


async def derive_targets(settings: Settings) -> list[HealthTarget]:
    """Return the targets the settings imply, plus PostgreSQL and Redis on localhost when they answer."""
    targets = [
        HealthTarget(name="prefect", kind="prefect", critical=True, managed=True),
        HealthTarget(name="disk", kind="disk", url=str(settings.home), managed=True),
        HealthTarget(name="memory", kind="memory", managed=True),
        HealthTarget(name="cpu", kind="cpu", managed=True),
    ]
    if settings.evolution_url:
        targets.append(HealthTarget(name="evolution", kind="evolution", critical=True, managed=True))
    if settings.groq_key:
        targets.append(HealthTarget(name="groq", kind="groq", critical=True, managed=True))
    postgres_urls = list(settings.backup_postgres)
    if settings.database_url.startswith("postgresql"):
        postgres_urls.append(settings.database_url)  # after the backup URLs: each keeps the name its backup source has
    if not postgres_urls and await _answers_postgres(LOCAL_POSTGRES):
        postgres_urls.append(LOCAL_POSTGRES)
    redis_urls = list(settings.backup_redis)
    if not redis_urls and await _answers_redis(LOCAL_REDIS):
        redis_urls.append(LOCAL_REDIS)
    targets += _named_targets("postgres", postgres_urls)
    targets += _named_targets("redis", redis_urls)
    targets.append(HealthTarget(name="backup", kind="backup", dsn=settings.database_url, critical=True, managed=True))
    targets.append(HealthTarget(name="transcription-queue", kind="queue", dsn=settings.database_url, queue_key="voice-notes", managed=True))
    targets += _queue_targets(settings.queue_keys, settings.backup_redis[0] if settings.backup_redis else LOCAL_REDIS)
    return targets


def _queue_targets(queue_keys: tuple[str, ...], default_redis: str) -> list[HealthTarget]:
    """One `queue` target per VIGIA_QUEUE_KEYS item: a bare key is on the first backup Redis (else the local one)."""
    targets: list[HealthTarget] = []
    for item in queue_keys:
        url, _, key = item.partition("#") if "://" in item else (default_redis, "", item)
        name = base = slug_name(f"queue-{key}")
        while name in {target.name for target in targets}:
            name = f"{base[:60]}-{len(targets) + 1}"
        targets.append(HealthTarget(name=name, kind="queue", dsn=url, queue_key=key, managed=True))
    return targets


def _named_targets(kind: str, urls: list[str]) -> list[HealthTarget]:
    named = name_connections(kind, urls)
    return [HealthTarget(name=name, kind=kind, dsn=url, critical=True, managed=True) for name, url in named]


def _existing_targets() -> list[HealthTarget]:
    try:
        return list(HealthTargets.load(BLOCK_NAME).targets)
    except ValueError:
        return []


async def _answers_postgres(url: str) -> bool:
    try:
        await tcp.connect("127.0.0.1:5432", timeout=1)
        await postgres.ping(url, timeout=2)
    except ClientError:
        return False
    return True


async def _answers_redis(url: str) -> bool:
    try:
        await redis.ping(url, timeout=2)
    except ClientError:
        return False
    return True
