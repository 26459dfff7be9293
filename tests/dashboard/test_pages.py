"""Every page through Streamlit's AppTest against a seeded store: the numbers are `store.sla`'s, failures are banners."""

from datetime import timedelta

import pytest
from streamlit.testing.v1 import AppTest

from store.alerts import count_alerts_by_severity, deliveries_by_channel
from store.database import open_session
from store.history import backup_runs_between
from store.sla import backup_freshness, format_duration, recovery_times, response_times, sla_summary, uptime
from tests.dashboard.conftest import APP, CLOSED_PREFECT_API, window_of

PAGES = ("overview", "targets", "transcriptions", "backups", "alerts", "workflows")


def open_page(page: str = "overview") -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=60).run()
    if page != "overview":
        app.switch_page(f"views/{page}.py").run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def metrics(app: AppTest) -> dict[str, tuple[str, str]]:
    return {metric.label: (metric.value, metric.delta) for metric in app.metric}


def test_overview_tiles_are_the_sla_summary_of_the_window_and_say_prefect_is_down(seeded_store_url, dashboard_env):
    dashboard_env(seeded_store_url)
    app = open_page()
    start, end = window_of(app.main.caption[0].value)
    assert end - start == timedelta(days=7)
    with open_session(seeded_store_url) as session:
        expected = sla_summary(session, start, end, None, now=end)
    verdict = {True: "meets", False: "misses", None: "no data for"}
    assert metrics(app) == {row.name: (row.display, f"{verdict[row.meets]} target {row.target}") for row in expected}
    assert [w.value for w in app.warning] == [
        f"**The Prefect API is unreachable** — the Prefect API at {CLOSED_PREFECT_API} does not answer (ConnectError); "
        "the error rate counts transcriptions only. Is `vigia up` running?"
    ]
    assert [s.value for s in app.success] == ["No open incident."]


def test_the_window_picker_changes_every_number_to_the_chosen_window(seeded_store_url, dashboard_env):
    dashboard_env(seeded_store_url)
    app = open_page()
    app.sidebar.radio(key="window_choice").set_value("Last 24 h").run()
    start, end = window_of(app.main.caption[0].value)
    assert end - start == timedelta(hours=24)
    with open_session(seeded_store_url) as session:
        expected = sla_summary(session, start, end, None, now=end)
    assert [m.value for m in app.metric] == [row.display for row in expected]

    app.sidebar.radio(key="window_choice").set_value("Custom range").run()
    first_day = (end - timedelta(days=3)).date()
    app.sidebar.date_input(key="window_days").set_value((first_day, first_day)).run()
    start, end = window_of(app.main.caption[0].value)
    assert (start.date(), end - start) == (first_day, timedelta(days=1))
    with open_session(seeded_store_url) as session:
        expected = sla_summary(session, start, end, None, now=app.session_state["vigia_window"].now)
    assert [m.value for m in app.metric] == [row.display for row in expected]


def test_targets_page_lists_each_targets_uptime_from_the_sla_module(seeded_store_url, dashboard_env):
    dashboard_env(seeded_store_url)
    app = open_page("targets")
    start, end = window_of(app.main.caption[0].value)
    with open_session(seeded_store_url) as session:
        report = uptime(session, start, end)
        recoveries = recovery_times(session, start, end, end)
    table = app.dataframe[0].value
    assert list(table["target"]) == [item.target for item in report if item.percent is not None]
    # shown as text: no checkboxes, no raw floats (99.912, 100 rather than 100.0)
    assert list(table["uptime %"]) == [
        f"{round(item.percent, 3):.3f}".rstrip("0").rstrip(".") for item in report if item.percent is not None
    ]
    assert list(table["unknown"]) == [
        f"{round(item.unknown_seconds / 3600, 2):.3f}".rstrip("0").rstrip(".") for item in report if item.percent is not None
    ]
    assert set(table["critical"]) <= {"critical", ""}
    assert [s.value for s in app.subheader] == ["Uptime", "Latency", "Incidents"]
    assert app.main.caption[-1].value == (
        f"{len(recoveries.incidents)} incidents · MTTR {format_duration(recoveries.mttr_seconds)} · "
        f"worst {format_duration(recoveries.worst_seconds)}"
    )


def test_transcriptions_page_shows_the_response_time_figures_of_the_sla_module(seeded_store_url, dashboard_env):
    dashboard_env(seeded_store_url)
    app = open_page("transcriptions")
    start, end = window_of(app.main.caption[0].value)
    with open_session(seeded_store_url) as session:
        times = response_times(session, start, end)
    shown = metrics(app)
    assert shown["Voice notes"][0] == f"{times.count:,}"
    assert shown["Replied"][0] == f"{times.replied:,}"
    assert shown["p95"] == (f"{times.p95_seconds:.1f} s", "target < 15 s")
    assert shown["Under 15 s"][0] == f"{times.under_target_percent:.1f} %"
    assert [s.value for s in app.subheader] == ["Failures by reason"]


def test_backups_page_shows_freshness_and_every_run_of_the_window(seeded_store_url, dashboard_env):
    dashboard_env(seeded_store_url)
    app = open_page("backups")
    start, end = window_of(app.main.caption[0].value)
    with open_session(seeded_store_url) as session:
        fresh = backup_freshness(session, end)
        runs = backup_runs_between(session, start, end)
    shown = metrics(app)
    assert shown["Newest verified backup"] == (f"{format_duration(fresh.age_seconds)} old", "target < 26 h")
    assert shown["Runs"][0] == str(len(runs))
    assert list(app.dataframe[0].value["run"]) == [run.id for run in runs]
    assert "failed" in set(app.dataframe[0].value["status"])


def test_alerts_page_counts_alerts_and_deliveries_per_channel(seeded_store_url, dashboard_env):
    dashboard_env(seeded_store_url)
    app = open_page("alerts")
    start, end = window_of(app.main.caption[0].value)
    with open_session(seeded_store_url) as session:
        severities = count_alerts_by_severity(session, start, end)
        channels = deliveries_by_channel(session, start, end)
    assert metrics(app)["Critical"][0] == str(severities["critical"])
    table = app.dataframe[0].value
    assert list(table["service"]) == [c.service for c in channels]
    assert list(table["success"]) == [f"{c.success:,}" for c in channels]
    assert list(table["failure"]) == [f"{c.failure:,}" for c in channels]


def test_workflows_page_names_the_prefect_api_that_is_down(seeded_store_url, dashboard_env):
    dashboard_env(seeded_store_url)
    app = open_page("workflows")
    assert [w.value for w in app.warning] == [
        f"**The Prefect API is unreachable** — the Prefect API at {CLOSED_PREFECT_API} does not answer (ConnectError); "
        "flow runs cannot be shown. Is `vigia up` running?"
    ]
    assert len(app.metric) == 0


@pytest.mark.parametrize("page", PAGES[:-1])
def test_an_empty_store_shows_a_friendly_empty_state_on_every_page(page, sqlite_store_url, dashboard_env):
    dashboard_env(sqlite_store_url)
    app = open_page(page)
    assert [i.value.split("**")[1] for i in app.info] == ["Nothing recorded yet."]
    assert len(app.metric) == 0 and len(app.error) == 0


@pytest.mark.parametrize("page", PAGES[:-1])
def test_an_unreachable_store_is_a_banner_naming_it_without_its_password(page, dashboard_env):
    dashboard_env("postgresql+psycopg://vigia:s3cret-pw@127.0.0.1:1/vigia")
    app = open_page(page)
    [banner] = app.error
    assert banner.value.startswith("**The store is unreachable** — postgresql+psycopg://vigia:***@127.0.0.1:1/vigia: ")
    assert "check VIGIA_DATABASE_URL" in banner.value
    assert "s3cret-pw" not in banner.value
    assert len(app.metric) == 0


def test_an_unmigrated_store_says_how_to_migrate_it(tmp_path, dashboard_env):
    dashboard_env(f"sqlite:///{tmp_path / 'never-migrated.db'}")
    app = open_page()
    [banner] = app.error
    assert "no such table" in banner.value and "migrate it with `vigia setup` or `vigia up`" in banner.value


def test_the_password_gate_opens_only_for_the_right_password(seeded_store_url, dashboard_env):
    dashboard_env(seeded_store_url, password="correct horse")
    app = open_page()
    assert len(app.metric) == 0 and [t.label for t in app.text_input] == ["Password"]
    app.text_input[0].input("wrong")
    app.button[0].click().run()
    assert [e.value for e in app.error] == ["Wrong password."] and len(app.metric) == 0
    app.text_input[0].input("correct horse")
    app.button[0].click().run()
    assert len(app.text_input) == 0
    assert [m.label for m in app.metric] == ["Uptime", "Response time", "Error rate", "Recovery time", "Backup freshness"]


def test_repeated_wrong_passwords_make_the_next_attempt_wait_even_from_a_new_session(seeded_store_url, dashboard_env):
    dashboard_env(seeded_store_url, password="correct horse")
    app = open_page()
    for _ in range(3):
        app.text_input[0].input("guess")
        app.button[0].click().run()
        assert [e.value for e in app.error] == ["Wrong password."]
    fresh = open_page()
    fresh.text_input[0].input("correct horse")
    fresh.button[0].click().run()
    [error] = fresh.error
    assert error.value.startswith("Too many wrong passwords: try again in ") and len(fresh.metric) == 0
