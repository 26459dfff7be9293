"""`vigia demo-data`'s conversations look like a bot's week: a daily rhythm, quick answers, a few missed, one silence."""

from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from store.conversations import bot_silence, conversation_figures
from store.database import open_session
from store.demo import seed_history
from store.demo_conversations import SILENT_MINUTES
from store.models import ConversationMessageRow

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def test_demo_conversations_hold_a_rhythm_quick_answers_some_missed_and_one_silent_episode(sqlite_store_url):
    with open_session(sqlite_store_url) as session:
        summary = seed_history(session, days=10, seed=4, now=NOW, notes_per_day=0, chats_per_day=120)
        assert summary.rows["conversation_messages"] > 10 * 120 * 2
        week = conversation_figures(session, NOW - timedelta(days=7), NOW)
        assert 0 < week.response_p50 < 15 and week.response_p95 < 600
        assert 0 < week.unanswered_percent < 15 and week.by_agent > 0 and 5 < week.voice_note_percent < 30
        assert week.new_conversations <= week.active_chats * 7
        by_hour = dict(
            session.execute(
                select(func.strftime("%H", ConversationMessageRow.at), func.count()).group_by(
                    func.strftime("%H", ConversationMessageRow.at)
                )
            ).all()
        )
        assert by_hour["10"] > 5 * by_hour["03"]  # mornings are busy, nights quiet
        start = summary.start + (summary.end - summary.start) * 0.7
        episode = start.replace(hour=14, minute=0, second=0, microsecond=0)
        silence = bot_silence(session, episode + timedelta(minutes=SILENT_MINUTES - 5), timedelta(minutes=15))
    assert silence is not None and silence.since >= episode - timedelta(minutes=1)
