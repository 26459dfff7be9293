"""The weekly report as people open it: in Chromium, on a desktop and a phone, for a store with nothing in it,
an install one day old, and a year of history; in VIGIA_TIMEZONE, with nothing fetched from outside the host.

Screenshots land in tests/screenshots/report-<store>-<screen>.png (git-ignored).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from store.database import open_session
from store.demo import seed_history
from tasks.report_render import write_report
from tasks.weekly_data import collect_weekly_data, parse_week
from tasks.workflow_runs import WorkflowRunCount
from tests.dashboard.test_browser import CHROMIUM, SCREENSHOTS, browser  # noqa: F401

ZONE = "America/Sao_Paulo"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)  # a Friday: W47 is under way, W46 the last full week
# What a reader must never see: Python's and pandas' empty values, raw booleans, UTC offsets, a crash.
RAW = re.compile(r"\b(None|nan|NaN|NaT|True|False|Traceback)\b|\+00:00")
SCREENS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
WORKFLOWS = [WorkflowRunCount("health-check", "every-5-min", completed=2010, failed=3, crashed=1, cancelled=0, late=2)]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium")


def report_page(store_url: str, week: str, folder: Path, workflows=()) -> tuple[Path, str]:
    report = collect_weekly_data.fn(store_url, parse_week(week, ZONE), list(workflows), list(workflows), now=NOW)
    rendered = write_report.fn(report, folder)
    return rendered.html_path, rendered.html


def read_in_chromium(browser, path: Path, name: str) -> dict[str, str]:  # noqa: F811
    """Open the page on each screen; return its visible text per screen, after checking what it fetched and its width."""
    SCREENSHOTS.mkdir(exist_ok=True)
    texts = {}
    for screen, size in SCREENS.items():
        page = browser.new_page(viewport=size)
        fetched: list[str] = []
        page.on("request", lambda request, fetched=fetched: fetched.append(request.url))
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        outside = [url for url in fetched if not url.startswith(("file:", "data:", "http://127.0.0.1"))]
        assert not outside, f"{name} on a {screen} fetched {outside}"
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= size["width"], f"{name} is {width} px wide on a {size['width']} px {screen}: it scrolls sideways"
        page.screenshot(path=SCREENSHOTS / f"report-{name}-{screen}.png", full_page=True)
        texts[screen] = page.inner_text("body")
        page.close()
    for screen, text in texts.items():
        assert not RAW.search(text), f"{name} on a {screen} shows {RAW.search(text).group(0)!r}:\n{text}"
    return texts


def test_a_report_of_a_week_before_anything_was_monitored_says_so_and_misses_nothing(sqlite_store_url, tmp_path, browser):  # noqa: F811
    path, email = report_page(sqlite_store_url, "2026-W47", tmp_path / "reports")
    text = read_in_chromium(browser, path, "empty")["desktop"]
    assert "not monitored yet" in text
    assert not re.search(r"\bmissed\b|FAIL", text), text
    assert "none this week" not in text.lower()  # empty sections read as one sentence each, saying what is empty
    assert "No voice notes" in text and "No backup ran" in text
    assert "cid:" not in path.read_text() and not RAW.search(re.sub(r"<[^>]+>", " ", email))


def test_a_day_old_install_reads_from_its_first_check_in_local_time_and_the_week_before_is_not_a_failure(
    sqlite_store_url,
    tmp_path,
    browser,  # noqa: F811
):
    with open_session(sqlite_store_url) as session:
        seed_history(session, days=1, seed=5, now=NOW, notes_per_day=40, chats_per_day=60)
    path, _ = report_page(sqlite_store_url, "2026-W47", tmp_path / "reports", WORKFLOWS)
    text = read_in_chromium(browser, path, "day-old")["desktop"]
    assert "Monitored since Thu 19 Nov 09:00" in text  # 12:00 UTC, in São Paulo; the zone named once, at the top
    assert "America/Sao_Paulo" in text
    sla = text.split("Service levels")[1].split("\n\n")[0]
    assert "Backup freshness" in sla and "not monitored yet" in sla  # the week before Vigia existed
    assert "FAIL" not in text and "missed" not in sla.split("Backup freshness")[1].split("\n")[0]


@pytest.mark.timeout(300)
def test_a_report_on_a_year_of_history_opens_with_a_summary_and_formatted_tables(year_store_url, tmp_path, browser):  # noqa: F811
    path, email = report_page(year_store_url, "2026-W46", tmp_path / "reports", WORKFLOWS)
    texts = read_in_chromium(browser, path, "year")
    text = texts["desktop"]
    summary = text.split("Service levels")[0]
    assert "Every service level met" in summary or "Missed:" in summary
    assert "Worst incident:" in summary or "No incidents" in summary
    assert re.search(r"The bot answered customers in [\d.]+ (s|min) \(p95\); [\d,]+ of [\d,]+ customer messages", summary)
    assert "Conversations (the bot's own service)" in text and "first response p95" in text
    assert "the week before" in summary  # what changed
    assert re.search(r"\d+ (h|min|s)\b", text) and " MB" in text and " %" in text
    assert "size_bytes" not in text and "dump_seconds" not in text  # columns read as words, with units
    assert path.read_text().count("data:image/png;base64,") >= 3  # the file keeps its charts inside
    assert email.count("cid:") >= 3 and "data:image" not in email  # the email's charts travel as inline parts
