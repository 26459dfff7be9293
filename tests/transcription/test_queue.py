"""The transcription queue: oldest first, leases renewed by their holder, and only an expired lease taken again."""

from datetime import datetime, timedelta, timezone

from store import voice_note_queue as queue
from store import voice_notes
from store.database import open_session

from .test_store import new_note

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
LEASE = timedelta(seconds=30)


def store_notes(url: str, count: int) -> list[int]:
    with open_session(url) as session:
        return [voice_notes.insert_voice_note(session, new_note(f"M{i}", received_at=NOW + timedelta(seconds=i))) for i in range(count)]


def claim(url: str, holder: str, token: str, at: datetime, limit: int, least: int = 1) -> list[queue.ClaimedNote]:
    with open_session(url) as session:
        return queue.claim_notes(session, holder, token, at, LEASE, limit, least)


def test_two_transcribers_claim_disjoint_notes_oldest_first(store_url):
    ids = store_notes(store_url, 5)
    first = claim(store_url, "host-a/1", "token-a", NOW, 3)
    second = claim(store_url, "host-b/2", "token-b", NOW, 3)
    assert [note.id for note in first] == ids[:3] and [note.id for note in second] == ids[3:]
    assert claim(store_url, "host-c/3", "token-c", NOW, 3) == []


def test_a_sliver_of_room_waits_for_a_batch_while_a_long_queue_waits_but_takes_a_short_queue_whole(store_url):
    ids = store_notes(store_url, 6)
    assert claim(store_url, "host-a/1", "token-a", NOW, 2, least=4) == []  # 6 wait, room for 2: one run per sliver
    assert [note.id for note in claim(store_url, "host-a/1", "token-b", NOW, 4, least=4)] == ids[:4]
    assert [note.id for note in claim(store_url, "host-a/1", "token-c", NOW, 2, least=4)] == ids[4:]  # all that waits


def test_a_held_note_that_merely_waits_is_never_taken_while_its_holder_renews(store_url):
    [note_id] = store_notes(store_url, 1)
    claim(store_url, "host-a/1", "token-a", NOW, 1)
    for minute in range(1, 6):  # the runaway of STALE_CLAIM: a claim older than 60 s was taken again
        at = NOW + timedelta(seconds=20 * minute)
        with open_session(store_url) as session:
            assert queue.renew_lease(session, "token-a", at, LEASE) == 1
        assert claim(store_url, "host-b/2", "token-b", at + timedelta(seconds=5), 1) == []
    with open_session(store_url) as session:
        assert voice_notes.get_voice_note(session, note_id).lease_token == "token-a"


def test_an_expired_lease_is_taken_again_with_the_dead_holders_run_named(store_url):
    [note_id] = store_notes(store_url, 1)
    claim(store_url, "host-a/1", "token-a", NOW, 1)
    with open_session(store_url) as session:
        queue.rekey_claim(session, "token-a", "run-a", "run-a")
        voice_notes.start_run(session, note_id, "run-a", NOW)
    later = NOW + LEASE + timedelta(seconds=1)
    [taken] = claim(store_url, "host-b/2", "token-b", later, 5)
    assert (taken.id, taken.old_token, taken.old_flow_run_id) == (note_id, "run-a", "run-a")
    with open_session(store_url) as session:
        assert queue.renew_lease(session, "run-a", later, LEASE) == 0  # the dead holder, back, finds it gone


def test_a_note_whose_reply_may_have_gone_out_is_never_started_again_on_its_own(store_url):
    [note_id] = store_notes(store_url, 1)
    claim(store_url, "host-a/1", "token-a", NOW, 1)
    with open_session(store_url) as session:
        voice_notes.claim_reply(session, note_id, NOW)
    assert claim(store_url, "host-b/2", "token-b", NOW + timedelta(hours=1), 1) == []


def test_a_manual_run_takes_free_notes_but_not_one_a_live_transcriber_holds(store_url):
    held, free, done = store_notes(store_url, 3)
    claim(store_url, "host-a/1", "token-a", NOW, 1)
    with open_session(store_url) as session:
        voice_notes.record_reply(session, done, NOW, "3EB0", keep_transcript=False)
        assert queue.take_notes(session, [held, free, done], "run-ui", "ui/9", NOW, LEASE) == [free]


def test_the_queue_reports_depth_oldest_wait_and_held_notes(store_url):
    store_notes(store_url, 4)
    claim(store_url, "host-a/1", "token-a", NOW, 1)
    with open_session(store_url) as session:
        state = queue.read_queue(session, NOW + timedelta(seconds=20))
        assert queue.has_waiting(session, NOW) is True
    assert (state.waiting, state.oldest_waiting_seconds, state.held) == (3, 19.0, 1)


def test_a_claim_given_back_is_queued_again_in_its_place(store_url):
    ids = store_notes(store_url, 2)
    claim(store_url, "host-a/1", "token-a", NOW, 2)
    with open_session(store_url) as session:
        assert queue.release_claim(session, "token-a") == 2
    assert [note.id for note in claim(store_url, "host-b/2", "token-b", NOW, 2)] == ids


def test_the_queue_is_a_health_target_measured_in_the_store(store_url):
    import asyncio

    from prefect.logging import disable_run_logger

    from blocks.health_targets import HealthTarget
    from tasks.probe_measures import ProbeContext, measure_queue

    store_notes(store_url, 3)
    target = HealthTarget(name="transcription-queue", kind="queue", dsn=store_url, queue_key=queue.HEALTH_QUEUE_KEY)
    with disable_run_logger():
        measure = asyncio.run(measure_queue(target, ProbeContext(), NOW + timedelta(seconds=62)))
    assert (measure.value, measure.summary) == (3.0, "3 voice notes waiting, the oldest for 62 s; 0 being answered")
    assert target.thresholds() == (100.0, None)
