"""The store's time arithmetic on SQLite, for any timestamp it can hold: epoch seconds to the nearest millisecond,
and the response-time figures (read apart, from julianday()) exactly those of that arithmetic."""

from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, literal, select

from store.database import UtcDateTime, open_session
from store.models import VoiceNoteRow
from store.sla.transcriptions import _SECONDS, percentile, response_times
from store.timearith import epoch_seconds

T0 = datetime(2026, 11, 16, tzinfo=timezone.utc)

# (µs after T0 received, µs to the reply): any microsecond, half-milliseconds included, up to a day late
notes = st.lists(
    st.tuples(st.integers(0, 7 * 86_400_000_000), st.one_of(st.integers(0, 86_400_000_000), st.integers(0, 3_000).map(lambda n: n * 500))),
    min_size=1,
    max_size=30,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 400 * 86_400_000_000))
def test_epoch_seconds_is_the_timestamp_to_the_nearest_millisecond(sqlite_store_url, microseconds):
    # strftime('%s') rounds to the millisecond, '%S' truncates: 00:00:00.9995 once read as 2 s after midnight.
    at = T0 + timedelta(microseconds=microseconds)
    with open_session(sqlite_store_url) as session:
        seconds = session.scalar(select(epoch_seconds(literal(at, UtcDateTime()))))

    assert abs(seconds - at.timestamp()) <= 0.0005 + 1e-9, (at, seconds)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(notes)
def test_sqlite_response_times_are_those_of_the_stores_sql_arithmetic(sqlite_store_url, drawn):
    with open_session(sqlite_store_url) as session:
        session.execute(delete(VoiceNoteRow))
        for number, (received, late) in enumerate(drawn):
            received_at = T0 + timedelta(microseconds=received)
            session.add(
                VoiceNoteRow(
                    instance="main",
                    message_id=f"m{number}",
                    chat_jid="5511900000000@s.whatsapp.net",
                    received_at=received_at,
                    replied_at=received_at + timedelta(microseconds=late),
                    status="replied",
                )
            )
    with open_session(sqlite_store_url) as session:
        expected = sorted(round(seconds, 3) for seconds in session.scalars(select(_SECONDS)))
        times = response_times(session, T0, T0 + timedelta(days=8))

    assert times.replied == len(drawn)
    assert times.max_seconds == expected[-1]
    assert times.p50_seconds == percentile(expected, 0.5)
    assert times.p95_seconds == percentile(expected, 0.95)
