"""The dashboard's read functions outside the SLA module, on SQLite and PostgreSQL alike."""

from datetime import datetime, timedelta, timezone

from store.alerts import (
    ChannelDeliveries,
    Delivery,
    alerts_between,
    count_alerts_by_severity,
    deliveries_by_channel,
    delivery_problems,
    record_alert,
    record_deliveries,
)
from store.database import open_session
from store.history import backup_runs_between, restores_between, store_contents, transcription_failures
from store.models import BackupItemRow, BackupRunRow, RestoreRow, VoiceNoteRow
from store.probes import LatencyPoint, ProbeResult, insert_probe_results, latency_series

T0 = datetime(2026, 11, 16, 0, 0, tzinfo=timezone.utc)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_latency_series_groups_probes_per_target_into_buckets_aligned_to_the_window(store_url):
    with open_session(store_url) as session:
        insert_probe_results(
            session,
            [
                ProbeResult("api", "http", at(0), True, "ok", latency_ms=100),
                ProbeResult("api", "http", at(5), True, "ok", latency_ms=300),
                ProbeResult("api", "http", at(65), True, "ok", latency_ms=50),
                ProbeResult("api", "http", at(70), False, "critical", latency_ms=None, reason="refused"),
                ProbeResult("db", "postgres", at(10), True, "ok", latency_ms=7),
                ProbeResult("db", "postgres", at(120), True, "ok", latency_ms=9),  # at the window's end: outside
            ],
            run_id=None,
        )
    with open_session(store_url) as session:
        points = latency_series(session, T0, at(120), 3600)
    assert points == [
        LatencyPoint("api", at(0), 200.0, 300.0, 2),
        LatencyPoint("api", at(60), 50.0, 50.0, 1),
        LatencyPoint("db", at(0), 7.0, 7.0, 1),
    ]


def test_alert_reads_count_severities_and_deliveries_per_channel_and_list_what_failed(store_url):
    with open_session(store_url) as session:
        down = record_alert(
            session,
            key="down:1",
            kind="down",
            severity="critical",
            title="api DOWN",
            body="refused",
            status="pending",
            created_at=at(10),
            target="api",
        )
        record_deliveries(
            session,
            down.id,
            [
                Delivery("tgram://1234…/", "telegram", "success", None, 1, 200.0),
                Delivery("discord://98…/", "discord", "failure", "HTTP 502", 3, 900.0),
                Delivery("evolution://…", "whatsapp", "skipped", "evolution-api is DOWN", 0, 0.0),
            ],
            at(10),
        )
        up = record_alert(
            session,
            key="resolved:1",
            kind="resolved",
            severity="warning",
            title="api RESOLVED",
            body="",
            status="pending",
            created_at=at(40),
            target="api",
        )
        record_deliveries(session, up.id, [Delivery("tgram://1234…/", "telegram", "timeout", "read timeout", 2, 10000.0)], at(40))
        record_alert(session, key="old", kind="down", severity="critical", title="old", body="", status="logged", created_at=at(-60))
    with open_session(store_url) as session:
        assert [a.title for a in alerts_between(session, T0, at(60))] == ["api RESOLVED", "api DOWN"]
        assert count_alerts_by_severity(session, T0, at(60)) == {"critical": 1, "warning": 1}
        assert deliveries_by_channel(session, T0, at(60)) == [
            ChannelDeliveries("discord", "discord://98…/", 0, 1, 0, 0),
            ChannelDeliveries("telegram", "tgram://1234…/", 1, 0, 1, 0),
            ChannelDeliveries("whatsapp", "evolution://…", 0, 0, 0, 1),
        ]
        problems = delivery_problems(session, T0, at(60))
    assert [(p.alert_title, p.service, p.status, p.reason) for p in problems] == [
        ("api RESOLVED", "telegram", "timeout", "read timeout"),
        ("api DOWN", "whatsapp", "skipped", "evolution-api is DOWN"),
        ("api DOWN", "discord", "failure", "HTTP 502"),
    ]


def test_backup_reads_list_runs_with_item_verification_and_restores(store_url):
    with open_session(store_url) as session:
        assert store_contents(session).is_empty
        for day, verified in ((0, True), (1, False)):
            run_id = f"2026-11-1{6 + day}T060000Z"
            session.add(
                BackupRunRow(
                    id=run_id,
                    started_at=at(day * 1440),
                    finished_at=at(day * 1440 + 3),
                    status="verified" if verified else "failed",
                    verified=verified,
                    local_dir="x",
                    size_bytes=1000 if verified else None,
                    error=None if verified else "upload failed",
                )
            )
            session.flush()
            session.add_all(
                [
                    BackupItemRow(run_id=run_id, source="app", kind="postgres", verified=verified),
                    BackupItemRow(run_id=run_id, source="redis", kind="redis", verified=True),
                ]
            )
        session.add(
            RestoreRow(
                run_id="2026-11-16T060000Z",
                source="app",
                target="postgresql://postgres@127.0.0.1/drill",
                started_at=at(30),
                finished_at=at(31),
                seconds=42.5,
                status="restored",
            )
        )
    with open_session(store_url) as session:
        runs = backup_runs_between(session, T0, at(2 * 1440))
        restores = restores_between(session, T0, at(2 * 1440))
        contents = store_contents(session)
    assert [(r.id, r.status, r.items, r.items_verified, r.error) for r in runs] == [
        ("2026-11-17T060000Z", "failed", 2, 1, "upload failed"),
        ("2026-11-16T060000Z", "verified", 2, 2, None),
    ]
    assert [(r.source, r.seconds, r.status) for r in restores] == [("app", 42.5, "restored")]
    assert (contents.backup_runs, contents.is_empty) == (2, False)


def test_transcription_failures_count_failed_and_skipped_notes_by_reason(store_url):
    def note(number: int, status: str, reason: str | None, minutes: float) -> VoiceNoteRow:
        return VoiceNoteRow(
            instance="main",
            message_id=f"M{number}",
            chat_jid="5511@s.whatsapp.net",
            received_at=at(minutes),
            status=status,
            error_reason=reason,
            attempts=1,
        )

    with open_session(store_url) as session:
        session.add_all(
            [
                note(1, "failed", "groq-timeout", 1),
                note(2, "failed", "groq-timeout", 2),
                note(3, "failed", None, 3),
                note(4, "skipped", "too-short", 4),
                note(5, "replied", None, 5),
                note(6, "failed", "groq-auth", 90),
            ]
        )
    with open_session(store_url) as session:
        failures = transcription_failures(session, T0, at(60))
    assert sorted((f.status, f.reason, f.count) for f in failures) == [
        ("failed", "groq-timeout", 2),
        ("failed", "unknown", 1),
        ("skipped", "too-short", 1),
    ]


def test_latency_buckets_of_whole_hours_start_on_the_hour_and_hold_only_the_windows_probes(store_url):
    with open_session(store_url) as session:
        insert_probe_results(
            session,
            [ProbeResult("api", "http", at(minute), True, "ok", latency_ms=float(minute)) for minute in (5, 20, 70, 130, 140)],
            run_id=None,
        )
    with open_session(store_url) as session:
        hourly = latency_series(session, at(10), at(135), 3600)
        short = latency_series(session, at(10), at(135), 1800)
    assert hourly == [
        LatencyPoint("api", at(0), 20.0, 20.0, 1),
        LatencyPoint("api", at(60), 70.0, 70.0, 1),
        LatencyPoint("api", at(120), 130.0, 130.0, 1),
    ]
    assert short == [
        LatencyPoint("api", at(10), 20.0, 20.0, 1),
        LatencyPoint("api", at(70), 70.0, 70.0, 1),
        LatencyPoint("api", at(130), 130.0, 130.0, 1),
    ]
