"""Vigia's environment settings (DESIGN §4), parsed strictly: every problem named with what it accepts."""

from __future__ import annotations

import ipaddress
import math
import os
import string
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from clients.redaction import mask_url
from store.urls import normalize_url

LOOPBACK_NAMES = ("localhost",)
# Shown as *** by repr(Settings), so printing, logging or a traceback's locals never reveal them.
SECRET_FIELDS = frozenset({"webhook_token", "evolution_key", "groq_key", "heartbeat_url", "dashboard_password", "prefect_auth_string"})
# URLs that may carry a password: shown with it masked.
URL_FIELDS = frozenset({"database_url", "backup_postgres", "backup_redis", "queue_keys"})


class SettingsError(Exception):
    """One or more settings are invalid; `problems` names each variable and what it accepts."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Settings:
    """Every setting Vigia reads from the environment, parsed."""

    home: Path
    database_url: str
    timezone: str
    bind: str
    webhook_token: str | None
    evolution_url: str | None
    evolution_key: str | None
    evolution_instance: str | None
    groq_key: str | None
    groq_base_url: str
    transcription_model: str
    transcription_language: str
    apprise_config: Path | None
    backup_postgres: tuple[str, ...]
    backup_redis: tuple[str, ...]
    backup_paths: tuple[Path, ...]
    backup_remote: str
    heartbeat_url: str | None
    dashboard_password: str | None
    keep_transcripts: bool
    prefect_api_url: str | None
    prefect_auth_string: str | None = None
    keywords: tuple[tuple[str, str], ...] = ()
    reply_template: str | None = None
    failure_reply: str | None = None
    webhook_max_bytes: int = 32 * 1024 * 1024
    groq_max_concurrency: int = 4
    groq_rpm: int = 20
    groq_audio_seconds_per_hour: int = 7200
    conversations: bool = True  # record every chat message's metadata (store/conversations.py)
    response_target_seconds: float = 60.0
    bot_silent_minutes: float = 15.0
    unanswered_alert_percent: float = 20.0
    keep_probes_days: int = 35  # raw probes, once rolled up (store/retention.py)
    keep_history_days: int = 400  # every other store row
    keep_transcripts_days: int = 30  # kept transcripts and spooled audio (store/spool_retention.py)
    prefect_keep_runs_days: int = 35  # Prefect's flow runs, with their logs and artifacts
    prefect_keep_events_days: int = 7  # Prefect's events
    queue_keys: tuple[str, ...] = ()  # Redis keys whose length is a backlog: KEY, or redis://…#KEY on another Redis

    @property
    def bind_is_loopback(self) -> bool:
        """Whether the receiver and dashboard listen only on this machine."""
        if self.bind in LOOPBACK_NAMES:
            return True
        return ipaddress.ip_address(self.bind).is_loopback

    def secrets(self) -> list[str]:
        """Every secret value set, and every password inside a URL setting, for masking."""
        values = [getattr(self, name) for name in sorted(SECRET_FIELDS)]
        urls = [self.database_url, *self.backup_postgres, *self.backup_redis, *self.queue_keys]
        values += [unquote(urlsplit(url).password or "") for url in urls]
        return [value for value in values if value]

    def __repr__(self) -> str:
        shown = []
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name in SECRET_FIELDS and value:
                value = "***"
            elif item.name in URL_FIELDS:
                value = mask_url(value) if isinstance(value, str) else tuple(mask_url(url) for url in value)
            shown.append(f"{item.name}={value!r}")
        return f"Settings({', '.join(shown)})"


def load_settings(environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")) -> Settings:
    """Read the settings from the environment over `.env`, with `<NAME>_FILE` for any value.

    Raises:
        SettingsError: listing every invalid variable with what it accepts.
    """
    source = _merge(os.environ if environ is None else environ, env_file)
    reader = _Reader(source)
    home = Path(reader.text("VIGIA_HOME") or "~/.vigia").expanduser()
    settings = Settings(
        home=home,
        database_url=reader.parse(
            "VIGIA_DATABASE_URL", normalize_url, "a SQLAlchemy URL: sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
        )
        or f"sqlite:///{home / 'vigia.db'}",
        timezone=reader.parse("VIGIA_TIMEZONE", _zone, "an IANA time zone such as America/Sao_Paulo or UTC") or "America/Sao_Paulo",
        bind=reader.parse("VIGIA_BIND", _address, "an IP address such as 127.0.0.1 or 0.0.0.0, or localhost") or "127.0.0.1",
        webhook_token=reader.parse("VIGIA_WEBHOOK_TOKEN", _token, "a random string of at least 16 characters"),
        evolution_url=reader.parse("EVOLUTION_API_URL", _http_url, "an http:// or https:// URL"),
        evolution_key=reader.text("EVOLUTION_API_KEY"),
        evolution_instance=reader.text("EVOLUTION_INSTANCE"),
        groq_key=reader.text("GROQ_API_KEY"),
        groq_base_url=reader.parse("GROQ_BASE_URL", _http_url, "an http:// or https:// URL") or "https://api.groq.com",
        transcription_model=reader.text("VIGIA_TRANSCRIPTION_MODEL") or "whisper-large-v3-turbo",
        transcription_language=reader.parse("VIGIA_TRANSCRIPTION_LANGUAGE", _language, "a two-letter ISO 639-1 code such as pt or en")
        or "pt",
        apprise_config=reader.parse("VIGIA_APPRISE_CONFIG", _existing_file, "the path of an existing Apprise YAML or text file"),
        backup_postgres=reader.parse_list("VIGIA_BACKUP_POSTGRES", _postgres_url, "comma-separated postgresql:// URLs"),
        backup_redis=reader.parse_list("VIGIA_BACKUP_REDIS", _redis_url, "comma-separated redis:// or rediss:// URLs"),
        backup_paths=reader.parse_list("VIGIA_BACKUP_PATHS", _existing_path, "comma-separated existing files or folders"),
        backup_remote=reader.text("VIGIA_BACKUP_REMOTE") or str(home / "remote"),
        heartbeat_url=reader.parse("VIGIA_HEARTBEAT_URL", _http_url, "an http:// or https:// URL"),
        dashboard_password=reader.text("VIGIA_DASHBOARD_PASSWORD"),
        keep_transcripts=reader.parse("VIGIA_KEEP_TRANSCRIPTS", _boolean, "true or false") or False,
        conversations=reader.parse("VIGIA_CONVERSATIONS", _boolean, "true or false") is not False,
        response_target_seconds=reader.parse("VIGIA_RESPONSE_TARGET_SECONDS", _positive_number, "a number of seconds above 0, e.g. 60")
        or 60.0,
        bot_silent_minutes=reader.parse("VIGIA_BOT_SILENT_MINUTES", _positive_number, "a number of minutes above 0, e.g. 15") or 15.0,
        unanswered_alert_percent=reader.parse("VIGIA_UNANSWERED_ALERT_PERCENT", _percent, "a percentage above 0 up to 100, e.g. 20")
        or 20.0,
        prefect_api_url=reader.parse("PREFECT_API_URL", _http_url, "the Prefect API URL, e.g. http://127.0.0.1:4200/api"),
        prefect_auth_string=reader.text("PREFECT_SERVER_API_AUTH_STRING"),
        keywords=reader.parse_list(
            "VIGIA_KEYWORDS", _keyword, "comma-separated word:severity pairs, severity one of info, warning, critical, emergency"
        ),
        reply_template=reader.parse(
            "VIGIA_REPLY_TEMPLATE", _reply_template, "text containing {transcript} (and optionally {seconds}); \\n for a line break"
        ),
        failure_reply=_unescape(reader.text("VIGIA_FAILURE_REPLY")),
        webhook_max_bytes=reader.parse("VIGIA_WEBHOOK_MAX_BYTES", _positive_int, "a whole number of bytes above 0, e.g. 33554432")
        or 32 * 1024 * 1024,
        groq_max_concurrency=reader.parse("VIGIA_GROQ_MAX_CONCURRENCY", _positive_int, "a whole number above 0, e.g. 4") or 4,
        groq_rpm=reader.parse("VIGIA_GROQ_RPM", _positive_int, "a whole number of requests per minute above 0, e.g. 20") or 20,
        groq_audio_seconds_per_hour=reader.parse(
            "VIGIA_GROQ_AUDIO_SECONDS_PER_HOUR", _positive_int, "a whole number of audio seconds per hour above 0, e.g. 7200"
        )
        or 7200,
        keep_probes_days=reader.parse("VIGIA_KEEP_PROBES_DAYS", _positive_int, "a whole number of days above 0, e.g. 35") or 35,
        keep_history_days=reader.parse("VIGIA_KEEP_HISTORY_DAYS", _positive_int, "a whole number of days above 0, e.g. 400") or 400,
        keep_transcripts_days=reader.parse("VIGIA_KEEP_TRANSCRIPTS_DAYS", _positive_int, "a whole number of days above 0, e.g. 30") or 30,
        prefect_keep_runs_days=reader.parse("VIGIA_PREFECT_KEEP_RUNS_DAYS", _positive_int, "a whole number of days above 0, e.g. 35") or 35,
        prefect_keep_events_days=reader.parse("VIGIA_PREFECT_KEEP_EVENTS_DAYS", _positive_int, "a whole number of days above 0, e.g. 7")
        or 7,
        queue_keys=reader.parse_list(
            "VIGIA_QUEUE_KEYS", _queue_key, "comma-separated Redis keys, or redis://HOST:PORT/DB#KEY for a key on another Redis"
        ),
    )
    if settings.keep_history_days < settings.keep_probes_days:
        reader.problems.append("VIGIA_KEEP_HISTORY_DAYS: shorter than VIGIA_KEEP_PROBES_DAYS; accepts at least as many days")
    evolution = {
        "EVOLUTION_API_URL": settings.evolution_url,
        "EVOLUTION_API_KEY": settings.evolution_key,
        "EVOLUTION_INSTANCE": settings.evolution_instance,
    }
    if any(evolution.values()) and not all(evolution.values()):
        missing = ", ".join(name for name, value in evolution.items() if not value)
        reader.problems.append(f"{missing}: required together with the other EVOLUTION_* settings")
    if reader.problems:
        raise SettingsError(reader.problems)
    return settings


def load_settings_or_exit() -> Settings:
    """Load the settings from the environment and `.env`, or print one `vigia: …` line per invalid variable and exit 2.

    What every entry point does first: the `vigia` commands, `vigia up`'s supervisor and the parts it starts.
    """
    try:
        return load_settings()
    except SettingsError as error:
        for problem in error.problems:
            print(f"vigia: {problem}", file=sys.stderr)
        raise SystemExit(2) from None


def _merge(environ: Mapping[str, str], env_file: Path | None) -> dict[str, str]:
    values = {}
    if env_file is not None and env_file.is_file():
        from dotenv import dotenv_values  # only with a .env: a command without one starts faster

        values.update({key: value for key, value in dotenv_values(env_file).items() if value is not None})
    values.update(environ)
    return values


class _Reader:
    """Reads variables, collecting every problem instead of stopping at the first."""

    def __init__(self, source: Mapping[str, str]):
        self.source = source
        self.problems: list[str] = []

    def text(self, name: str) -> str | None:
        direct = self.source.get(name, "").strip()
        file_name = self.source.get(f"{name}_FILE", "").strip()
        if direct and file_name:
            self.problems.append(f"{name}: set either {name} or {name}_FILE, not both")
            return None
        if not file_name:
            return direct or None
        try:
            return Path(file_name).read_text().strip() or None
        except OSError as error:
            self.problems.append(f"{name}_FILE: cannot read {file_name} ({error.strerror}); accepts a readable file holding the value")
            return None

    def parse(self, name: str, parser, accepts: str):
        raw = self.text(name)
        if raw is None:
            return None
        try:
            return parser(raw)
        except ValueError as error:
            detail = f" ({error})" if str(error) else ""
            self.problems.append(f"{name}: invalid value{detail}; accepts {accepts}")
            return None

    def parse_list(self, name: str, parser, accepts: str) -> tuple:
        raw = self.text(name)
        if raw is None:
            return ()
        items = []
        for position, item in enumerate((part.strip() for part in raw.split(",")), start=1):
            if not item:
                continue
            try:
                items.append(parser(item))
            except ValueError as error:
                self.problems.append(f"{name}: item {position} is invalid ({error}); accepts {accepts}")
        return tuple(items)


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone {value!r}") from error
    return value


def _address(value: str) -> str:
    if value in LOOPBACK_NAMES:
        return value
    try:
        return str(ipaddress.ip_address(value))
    except ValueError as error:
        raise ValueError(f"{value!r} is not an IP address") from error


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL with a host")
    return value.rstrip("/")


def _postgres_url(value: str) -> str:
    if urlsplit(value).scheme.split("+")[0] not in ("postgresql", "postgres") or not urlsplit(value).path.strip("/"):
        raise ValueError("not a postgresql:// URL naming a database")
    return value


def _redis_url(value: str) -> str:
    if urlsplit(value).scheme not in ("redis", "rediss", "unix"):
        raise ValueError("not a redis:// URL")
    return value


def _queue_key(value: str) -> str:
    if "://" not in value:
        return value
    url, _, key = value.partition("#")
    _redis_url(url)
    if not key.strip():
        raise ValueError("no #KEY after the Redis URL")
    return value


def _existing_file(value: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_file():
        raise ValueError(f"{path} does not exist")
    return path


def _existing_path(value: str) -> Path:
    path = Path(value).expanduser()
    if not path.exists():
        raise ValueError(f"{path} does not exist")
    return path


def _language(value: str) -> str:
    if len(value) != 2 or not value.isalpha():
        raise ValueError(f"{value!r} is not a two-letter code")
    return value.lower()


def _token(value: str) -> str:
    if len(value) < 16:
        raise ValueError("shorter than 16 characters")
    return value


def _keyword(value: str) -> tuple[str, str]:
    word, separator, severity = value.rpartition(":")
    severity = severity.strip().lower()
    if not separator or not word.strip():
        raise ValueError(f"{value!r} is not word:severity")
    if severity not in ("info", "warning", "critical", "emergency"):
        raise ValueError(f"{severity!r} is not a severity")
    return word.strip(), severity


def _reply_template(value: str) -> str:
    template = _unescape(value)
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as error:
        raise ValueError(str(error)) from error
    if "transcript" not in names or not names <= {"transcript", "seconds"}:
        raise ValueError("it must contain {transcript} and no other field than {seconds}")
    return template


def _unescape(value: str | None) -> str | None:
    return None if value is None else value.replace("\\n", "\n")


def _positive_int(value: str) -> int:
    if not value.isdigit() or int(value) <= 0:
        raise ValueError(f"{value!r} is not a whole number above 0")
    return int(value)


def _positive_number(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a number") from None
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{value!r} is not a number above 0")
    return number


def _percent(value: str) -> float:
    number = _positive_number(value)
    if number > 100:
        raise ValueError(f"{value!r} is over 100")
    return number


def _boolean(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{value!r} is not a boolean")
