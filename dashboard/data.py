"""Every store read the pages make, cached for a minute; a store that fails stops the page with a banner.

Each loader opens its own short read-only session (no write lock: a flow writing never stalls a page), and the numbers are the
ones `store.sla` computes for the CLI and the weekly report.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

import streamlit as st

from store import alerts, conversations, history, incidents, probes, sla
from store.database import StoreError, describe_url, open_read_session

TTL_SECONDS = 60
T = TypeVar("T")


def read(loader: Callable[..., T], url: str, *args) -> T:
    """Call a cached loader; when the store fails, show what is down and stop the page (no traceback)."""
    try:
        return loader(url, *args)
    except (StoreError, ValueError) as error:
        show_store_down(url, error)
        st.stop()
        raise  # st.stop() raises; this keeps type checkers and readers honest


def show_store_down(url: str, error: Exception) -> None:
    """Show a banner naming the store that failed and what to do next."""
    hint = (
        "migrate it with `vigia setup` or `vigia up`"
        if "no such table" in str(error) or "does not exist" in str(error)
        else ("check VIGIA_DATABASE_URL and that the database is running")
    )
    st.error(
        f"**The store is unreachable** — {_safe_url(url)}: {error}. The dashboard retries every minute; {hint}.", icon=":material/error:"
    )


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def summary(url: str, start: datetime, end: datetime, now: datetime, finished: int | None, failed: int | None) -> list[sla.SlaRow]:
    """The five SLA tiles of the window (workflow counts from Prefect, or None when it did not answer)."""
    runs = None if finished is None else sla.WorkflowRuns(finished=finished, failed=failed or 0)
    with open_read_session(url) as session:
        return sla.sla_summary(session, start, end, runs, now=now)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def error_rate(url: str, start: datetime, end: datetime, finished: int | None, failed: int | None) -> sla.ErrorRate:
    """Both error rates of the window."""
    runs = None if finished is None else sla.WorkflowRuns(finished=finished, failed=failed or 0)
    with open_read_session(url) as session:
        return sla.error_rate(session, start, end, runs)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def contents(url: str) -> history.StoreContents:
    """How much the store holds, to tell an empty store from an empty window."""
    with open_read_session(url) as session:
        return history.store_contents(session)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def open_incidents(url: str) -> list[incidents.Incident]:
    """Incidents not resolved yet, oldest first."""
    with open_read_session(url) as session:
        return incidents.list_incidents(session, open_only=True)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def uptimes(url: str, start: datetime, end: datetime) -> list[sla.Uptime]:
    """Each target's uptime over the window."""
    with open_read_session(url) as session:
        return sla.uptime(session, start, end)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def latency(url: str, start: datetime, end: datetime, bucket_seconds: int) -> list[probes.LatencyPoint]:
    """Probe latency per target and bucket."""
    with open_read_session(url) as session:
        return probes.latency_series(session, start, end, bucket_seconds)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def recoveries(url: str, start: datetime, end: datetime, now: datetime) -> sla.Recoveries:
    """Incidents opened in the window with their recovery times."""
    with open_read_session(url) as session:
        return sla.recovery_times(session, start, end, now)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def response(url: str, start: datetime, end: datetime) -> sla.ResponseTimes:
    """The response-time figures of the window."""
    with open_read_session(url) as session:
        return sla.response_times(session, start, end)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def response_samples(url: str, start: datetime, end: datetime) -> list[tuple[datetime, float]]:
    """(received at, seconds to reply) of every replied note in the window."""
    with open_read_session(url) as session:
        return sla.response_time_samples(session, start, end)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def transcription_failures(url: str, start: datetime, end: datetime) -> list[history.FailureCount]:
    """Failed and skipped notes of the window by reason."""
    with open_read_session(url) as session:
        return history.transcription_failures(session, start, end)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def freshness(url: str, now: datetime) -> sla.Freshness:
    """The newest verified backup and its age at `now`."""
    with open_read_session(url) as session:
        return sla.backup_freshness(session, now)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def backup_runs(url: str, start: datetime, end: datetime) -> list[history.BackupRunSummary]:
    """Backup runs started in the window, newest first."""
    with open_read_session(url) as session:
        return history.backup_runs_between(session, start, end)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def restores(url: str, start: datetime, end: datetime) -> list[history.RestoreSummary]:
    """Restores started in the window, newest first."""
    with open_read_session(url) as session:
        return history.restores_between(session, start, end)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def alert_history(url: str, start: datetime, end: datetime) -> list[alerts.Alert]:
    """Alerts raised in the window, newest first."""
    with open_read_session(url) as session:
        return alerts.alerts_between(session, start, end)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def alert_severities(url: str, start: datetime, end: datetime) -> dict[str, int]:
    """Alerts of the window counted by severity."""
    with open_read_session(url) as session:
        return alerts.count_alerts_by_severity(session, start, end)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def channel_deliveries(url: str, start: datetime, end: datetime) -> list[alerts.ChannelDeliveries]:
    """Deliveries of the window per channel and outcome."""
    with open_read_session(url) as session:
        return alerts.deliveries_by_channel(session, start, end)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def delivery_problems(url: str, start: datetime, end: datetime) -> list[alerts.DeliveryProblem]:
    """Deliveries of the window that failed, timed out or were skipped."""
    with open_read_session(url) as session:
        return alerts.delivery_problems(session, start, end)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def conversation_figures(
    url: str, start: datetime, end: datetime, now: datetime, target_seconds: float
) -> conversations.ConversationFigures:
    """The bot's service in the window, and how many chats wait for it now."""
    with open_read_session(url) as session:
        return conversations.conversation_figures(session, start, end, target=timedelta(seconds=target_seconds), now=now)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def chats_waiting(url: str, now: datetime, target_seconds: float) -> int:
    """Chats whose customer waits for an answer now."""
    with open_read_session(url) as session:
        return conversations.chats_waiting(session, now, target=timedelta(seconds=target_seconds))


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def messages_per_hour(url: str, start: datetime, end: datetime) -> dict[tuple[datetime, str], int]:
    """Messages per hour and direction in the window."""
    with open_read_session(url) as session:
        return conversations.messages_per_hour(session, start, end)


def _safe_url(url: str) -> str:
    try:
        return describe_url(url)
    except Exception:  # an unparsable URL is shown as nothing rather than risk its password
        return "the configured store"
