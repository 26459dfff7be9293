"""The bot's own service, checked at every health check: a warning when it goes silent or leaves too many unanswered.

No uptime probe sees these: Evolution and Groq answer, the bot's process is up, and customers still wait.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks.vigia import VigiaSettings
from store.conversations import bot_silence, conversation_figures
from store.database import open_session
from store.sla.freshness import format_local
from tasks.alerts import raise_alert
from tasks.messages import format_duration

HOUR = timedelta(hours=1)
MIN_MESSAGES_FOR_A_RATE = 10  # fewer customer messages in the hour say nothing about a rate


@task(name="check-bot-service", cache_policy=NO_CACHE)
async def check_bot_service(settings: VigiaSettings, now: datetime | None = None) -> list[str]:
    """Raise a `warning` when the bot is silent while customers write, or the last hour's unanswered share is over the limit.

    Returns the titles raised (already-raised ones are not sent again: a silence once per episode, the rate once an hour).
    """
    now = now or datetime.now(timezone.utc)
    target = timedelta(seconds=settings.response_target_seconds)
    with open_session(settings.database_url.get_secret_value()) as session:
        silence = bot_silence(session, now, timedelta(minutes=settings.bot_silent_minutes))
        hour = conversation_figures(session, now - target - HOUR, now - target, target=target, now=now)
    raised = []
    if silence is not None:
        title = f"the bot has answered nobody for {format_duration(now - silence.since)}"
        last = format_local(silence.last_answer, settings.timezone) if silence.last_answer else "never"
        body = (
            f"{silence.waiting} customer messages since {format_local(silence.since, settings.timezone)} have no answer, "
            f"the newest {format_duration(now - silence.newest)} ago; the last answer (bot or agent): {last}. "
            "Evolution and Groq may be UP: look at the bot's own process and its logs."
        )
        if await raise_alert("warning", title, body, key=f"bot-silent:{silence.since.isoformat()}", cooldown=None, target="bot"):
            raised.append(title)
    percent = hour.unanswered_percent
    if hour.messages_in >= MIN_MESSAGES_FOR_A_RATE and percent is not None and percent > settings.unanswered_alert_percent:
        title = f"{percent:.0f} % of the last hour's customer messages went unanswered"
        body = (
            f"{hour.unanswered} of {hour.messages_in} customer messages had no answer within {target.total_seconds():.0f} s "
            f"(limit {settings.unanswered_alert_percent:.0f} %); reply time p95 "
            f"{'—' if hour.response_p95 is None else format_duration(timedelta(seconds=hour.response_p95))}."
        )
        if await raise_alert("warning", title, body, key="bot-unanswered", cooldown=HOUR, target="bot"):
            raised.append(title)
    return raised
