"""The weekly-analytics flow on a seeded store: artifacts in Prefect, files under VIGIA_HOME, an email with attachments."""

import asyncio
from datetime import datetime, timezone

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort

from blocks.alert_routes import AlertRoutes
from blocks.vigia import VigiaSettings
from flows.weekly_analytics import weekly_analytics
from store.database import open_session
from store.demo import seed_history
from store.sla import sla_summary
from tasks.weekly_data import parse_week
from tests.fakes.smtp import smtp_sink

pytestmark = pytest.mark.usefixtures("prefect_server")
WEEK = "2026-W46"
ZONE = "America/Sao_Paulo"


@pytest.fixture
def seeded_store(sqlite_store_url):
    with open_session(sqlite_store_url) as session:
        seed_history(session, days=16, seed=3, now=datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc), notes_per_day=60)
    return sqlite_store_url


async def read_newest_artifact(key: str):
    """The newest artifact with this key: other tests of the session (the CLI's report run) make theirs too."""
    async with get_client() as client:
        [newest] = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])), sort=ArtifactSort.CREATED_DESC, limit=1
        )
        return newest


def test_the_report_lands_as_artifacts_files_and_an_email_with_charts_and_csvs(seeded_store, tmp_path):
    with smtp_sink(password="smtp-secret") as sink:
        VigiaSettings(home=str(tmp_path), database_url=seeded_store, timezone=ZONE).save("default", overwrite=True)
        config = (
            f"urls:\n  - mailto://alerts:smtp-secret@127.0.0.1:{sink.port}?from=vigia@ops.local&to=oncall@ops.local&mode=insecure:\n"
            "      - tag: report\n"
        )
        AlertRoutes(config=config, config_format="yaml").save("default", overwrite=True)
        try:
            path = asyncio.run(weekly_analytics(week=WEEK))
            [mail] = sink.wait_for(1, timeout=30)
        finally:
            AlertRoutes().save("default", overwrite=True)

    page = (tmp_path / "reports" / f"{WEEK}.html").read_text()
    assert path == str(tmp_path / "reports" / f"{WEEK}.html")
    week = parse_week(WEEK, ZONE)
    with open_session(seeded_store) as session:
        expected = {row.name: row.display for row in sla_summary(session, week.start, week.end, now=week.end)}
    for name in ("Uptime", "Response time", "Recovery time", "Backup freshness"):
        assert expected[name] in page, name  # the numbers are store.sla's
    assert page.count("data:image/png;base64,") == 4

    assert mail.message["Subject"] == f"[REPORT] Vigia weekly report {WEEK}"
    names = sorted(part.get_filename() for part in mail.message.walk() if part.get_filename())
    assert names == sorted(
        ["uptime.png", "response-times.png", "busiest-hours.png", "backup-sizes.png"]
        + [
            f"{key}.csv"
            for key in (
                "sla",
                "targets",
                "conversations",
                "transcriptions",
                "transcription-failures",
                "busiest-hours",
                "workflows",
                "backups",
                "restores",
                "alerts",
                "deliveries",
            )
        ]
    )
    html = mail.message.get_body(("html",)).get_content()
    assert expected["Response time"] in html and "smtp-secret" not in html
    # The charts show inside the email (cid: parts of a multipart/related, as Gmail and Outlook read), not as downloads.
    inline = {part.get_filename(): part for part in mail.message.walk() if part.get("Content-ID")}
    assert sorted(inline) == ["backup-sizes.png", "busiest-hours.png", "response-times.png", "uptime.png"]
    for name, part in inline.items():
        assert part["Content-ID"] == f"<{name}>" and part.get_content_disposition() == "inline" and f"cid:{name}" in html
    assert "data:image" not in html

    markdown = asyncio.run(read_newest_artifact("weekly-report"))
    assert f"# Vigia weekly report {WEEK}" in markdown.data and expected["Uptime"] in markdown.data
    table = asyncio.run(read_newest_artifact("weekly-targets"))
    assert '"target": "evolution-api"' in table.data


def test_re_running_a_week_replaces_its_report_and_a_bad_week_fails_clearly(seeded_store, tmp_path):
    VigiaSettings(home=str(tmp_path), database_url=seeded_store, timezone=ZONE).save("default", overwrite=True)
    AlertRoutes().save("default", overwrite=True)
    asyncio.run(weekly_analytics(week=WEEK, send_email=False))
    folder = tmp_path / "reports" / WEEK
    (folder / "stale.csv").write_text("old")
    first = (tmp_path / "reports" / f"{WEEK}.html").stat().st_mtime_ns
    asyncio.run(weekly_analytics(week=WEEK, send_email=False))
    assert (tmp_path / "reports" / f"{WEEK}.html").stat().st_mtime_ns > first
    assert not (folder / "stale.csv").exists()
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == [WEEK, f"{WEEK}.html"]
    with pytest.raises(ValueError, match="not an ISO week"):
        asyncio.run(weekly_analytics(week="46/2026", send_email=False))
