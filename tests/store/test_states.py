"""The state machine of DESIGN §6, stored for real on SQLite and PostgreSQL."""

import threading
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from store.database import get_engine, open_session
from store.incidents import list_incidents
from store.models import StateChangeRow
from store.probes import ProbeResult
from store.states import claim_state_changes, list_state_changes, read_state, record_probe

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
CONFIRM = timedelta(seconds=120)


def probe(at_seconds: float, ok: bool, target: str = "api", reason: str | None = None, level: str | None = None) -> ProbeResult:
    return ProbeResult(
        target=target,
        kind="http",
        at=T0 + timedelta(seconds=at_seconds),
        ok=ok,
        level=level or ("ok" if ok else "critical"),
        latency_ms=5.0,
        reason=reason or ("HTTP 200" if ok else "HTTP 503"),
    )


def apply(url: str, *results: ProbeResult, ancestors=(), critical=True):
    return [record_probe(url, result, critical=critical, confirm_after=CONFIRM, ancestors=ancestors) for result in results]


def transitions(url: str, target: str = "api") -> list[tuple]:
    with open_session(url) as session:
        return [(c.old_state, c.new_state, c.reason) for c in list_state_changes(session, target=target)]


def test_first_probe_records_the_target_as_new_and_up(store_url):
    [(state, change)] = apply(store_url, probe(0, True))
    assert (state.state, state.level, state.since) == ("UP", "ok", T0)
    assert (change.old_state, change.new_state) == (None, "UP")


def test_a_blip_that_recovers_while_pending_opens_no_incident(store_url):
    apply(store_url, probe(0, True), probe(300, False), probe(330, True))
    assert transitions(store_url) == [
        (None, "UP", "HTTP 200"),
        ("UP", "PENDING", "HTTP 503"),
        ("PENDING", "UP", "recovered: HTTP 200"),
    ]
    with open_session(store_url) as session:
        assert list_incidents(session) == []


def test_failing_for_the_confirmation_time_turns_down_and_opens_an_incident(store_url):
    results = apply(store_url, probe(0, True), probe(300, False), probe(330, False), probe(390, False), probe(420, False))
    states = [state.state for state, _ in results]
    assert states == ["UP", "PENDING", "PENDING", "PENDING", "DOWN"]
    with open_session(store_url) as session:
        [incident] = list_incidents(session)
        current = read_state(session, "api")
    assert (incident.opened_at, incident.confirmed_at, incident.resolved_at) == (
        T0 + timedelta(seconds=300),
        T0 + timedelta(seconds=420),
        None,
    )
    assert (incident.target, incident.critical, incident.reason) == ("api", True, "HTTP 503")
    assert (current.state, current.since, current.failing_since, current.incident_id) == (
        "DOWN",
        T0 + timedelta(seconds=420),
        T0 + timedelta(seconds=300),
        incident.id,
    )
    assert transitions(store_url)[-1] == ("PENDING", "DOWN", "HTTP 503")


def test_one_success_turns_down_into_up_and_resolves_the_incident(store_url):
    apply(store_url, probe(0, False), probe(120, False), probe(400, False), probe(700, True))
    with open_session(store_url) as session:
        [incident] = list_incidents(session)
        current = read_state(session, "api")
    assert incident.resolved_at == T0 + timedelta(seconds=700)
    assert (current.state, current.failing_since, current.incident_id) == ("UP", None, None)
    assert transitions(store_url)[-1] == ("DOWN", "UP", "recovered: HTTP 200")


def test_repeated_failures_while_down_store_no_new_change(store_url):
    apply(store_url, probe(0, False), probe(120, False), probe(420, False), probe(720, False))
    assert [t[:2] for t in transitions(store_url)] == [(None, "PENDING"), ("PENDING", "DOWN")]


def test_a_warning_while_up_is_a_level_change_not_a_state_change(store_url):
    apply(store_url, probe(0, True), probe(300, True, reason="slow: 6000 ms", level="warning"), probe(600, True))
    with open_session(store_url) as session:
        changes = list_state_changes(session, target="api")
    assert [(c.old_state, c.new_state, c.old_level, c.new_level) for c in changes] == [
        (None, "UP", None, "ok"),
        ("UP", "UP", "ok", "warning"),
        ("UP", "UP", "warning", "ok"),
    ]


def test_state_survives_a_restart_of_the_store_connection(store_url):
    apply(store_url, probe(0, False), probe(60, False))
    get_engine(store_url).dispose()
    get_engine.cache_clear()
    [(state, change)] = apply(store_url, probe(120, False))
    assert state.state == "DOWN" and change.old_state == "PENDING"


def test_a_child_failing_while_its_parent_fails_names_the_parent_as_root_cause(store_url):
    apply(store_url, probe(0, False, target="evolution"))
    [(_, change)] = apply(store_url, probe(1, False, target="bot"), ancestors=["evolution"])
    assert (change.new_state, change.root_cause) == ("PENDING", "evolution")


def test_overlapping_runs_store_each_transition_once(store_url):
    apply(store_url, probe(0, True))
    barrier = threading.Barrier(4)
    errors = []

    def run() -> None:
        try:
            barrier.wait()
            apply(store_url, probe(300, False))
        except Exception as error:  # noqa: BLE001 — surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert [t[:2] for t in transitions(store_url)] == [(None, "UP"), ("UP", "PENDING")]


def test_overlapping_consumers_claim_each_change_exactly_once(store_url):
    for second in range(0, 3000, 300):
        apply(store_url, probe(second, second % 600 == 0), probe(second, True, target=f"t{second}"))
    with open_session(store_url) as session:
        total = session.scalar(select(func.count()).select_from(StateChangeRow))
    barrier = threading.Barrier(3)
    claims: dict[str, list[int]] = {}

    def consume(name: str) -> None:
        barrier.wait()
        got = []
        while True:
            with open_session(store_url) as session:
                batch = claim_state_changes(session, name, datetime.now(timezone.utc), limit=3)
            if not batch:
                break
            got += [change.id for change in batch]
        claims[name] = got

    threads = [threading.Thread(target=consume, args=(f"run-{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    claimed = [change_id for ids in claims.values() for change_id in ids]
    assert total > 10
    assert sorted(claimed) == list(range(1, total + 1))
