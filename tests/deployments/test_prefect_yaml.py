"""prefect.yaml is the one list of deployments: `prefect deploy --all` and `vigia up` agree on it."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client

from deployments.definitions import DefinitionError, read_definitions
from deployments.serve import build_deployments
from store.health_runs import CHECK_INTERVAL

ROOT = Path(__file__).resolve().parents[2]


async def read_deployments() -> dict:
    async with get_client() as client:
        return {(await client.read_flow(d.flow_id)).name + "/" + d.name: d for d in await client.read_deployments()}


def test_prefect_deploy_all_creates_every_deployment_with_its_schedule_and_time_zone(prefect_server):
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "VIGIA_TIMEZONE": "America/Sao_Paulo"}
    prefect = [sys.executable, "-m", "prefect", "--no-prompt"]
    subprocess.run(
        [*prefect, "work-pool", "create", "vigia", "--type", "process", "--overwrite"], env=env, cwd=ROOT, check=True, capture_output=True
    )
    deployed = subprocess.run([*prefect, "deploy", "--all"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    deployments = asyncio.run(read_deployments())
    health = deployments["health-check/every-5-min"]
    assert [(s.schedule.cron, s.schedule.timezone) for s in health.schedules] == [("*/5 * * * *", "UTC")]
    assert (health.work_pool_name, health.tags) == ("vigia", ["vigia"])
    assert (health.global_concurrency_limit.limit, health.concurrency_options.collision_strategy.value) == (1, "CANCEL_NEW")
    assert set(health.parameter_openapi_schema["properties"]) == {"targets_block", "confirm_after_seconds", "recheck_every_seconds"}
    assert all(p.get("description") for p in health.parameter_openapi_schema["properties"].values())
    weekly = deployments["weekly-analytics/weekly"]
    assert [(s.schedule.cron, s.schedule.timezone) for s in weekly.schedules] == [("0 8 * * 1", "America/Sao_Paulo")]
    assert set(weekly.parameter_openapi_schema["properties"]) == {"week", "send_email"}
    assert all(p.get("description") for p in weekly.parameter_openapi_schema["properties"].values())
    backup = deployments["backup/daily"]
    assert [(s.schedule.cron, s.schedule.timezone) for s in backup.schedules] == [("0 3 * * *", "America/Sao_Paulo")]
    assert (backup.work_pool_name, backup.tags) == ("vigia", ["vigia"])
    assert (backup.global_concurrency_limit.limit, backup.concurrency_options.collision_strategy.value) == (1, "CANCEL_NEW")
    assert set(backup.parameter_openapi_schema["properties"]) == {"plan_block", "verify", "prune", "dry_run"}
    maintenance = deployments["maintenance/daily"]
    assert [(s.schedule.cron, s.schedule.timezone) for s in maintenance.schedules] == [("30 3 * * *", "America/Sao_Paulo")]
    assert set(maintenance.parameter_openapi_schema["properties"]) == {"settings_block", "dry_run"}
    restore = deployments["restore/on-demand"]
    assert (restore.schedules, restore.work_pool_name, restore.tags) == ([], "vigia", ["vigia"])
    assert set(restore.parameter_openapi_schema["properties"]) == {"run_id", "source", "target", "force", "plan_block"}
    assert restore.parameter_openapi_schema["required"] == ["run_id", "source"]
    for deployment in (backup, restore, maintenance):
        assert all(p.get("description") for p in deployment.parameter_openapi_schema["properties"].values())
    transcribe = deployments["transcribe-voice-note/on-webhook"]
    assert (transcribe.schedules, transcribe.work_pool_name, transcribe.tags) == ([], "vigia", ["vigia"])
    voice_note_ids = transcribe.parameter_openapi_schema["properties"]["voice_note_ids"]  # a batch of the queue (issue #13)
    assert (set(transcribe.parameter_openapi_schema["properties"]), transcribe.parameter_openapi_schema.get("required", [])) == (
        {"voice_note_ids", "voice_note_id"},
        [],
    )
    assert voice_note_ids["description"].startswith("Ids of the stored voice notes")


def test_vigia_up_serves_the_same_definitions_unpaused(monkeypatch):
    monkeypatch.setenv("VIGIA_TIMEZONE", "America/Sao_Paulo")
    served = {d.name: d for d in build_deployments()}
    transcribe = served["on-webhook"]
    assert (transcribe.schedules, transcribe.paused, transcribe.tags) == ([], False, ["vigia"])
    assert transcribe.entrypoint == "flows.transcribe_voice_note.transcribe_voice_note"
    health = served["every-5-min"]
    assert [(s.schedule.cron, s.schedule.timezone) for s in health.schedules] == [("*/5 * * * *", "UTC")]
    assert (health.paused, health.tags, health.concurrency_limit) == (False, ["vigia"], 1)
    assert health.entrypoint == "flows.health_check.health_check"


def test_vigia_up_serves_the_store_maintenance_daily_after_the_backup_one_run_at_a_time(monkeypatch):
    monkeypatch.setenv("VIGIA_TIMEZONE", "America/Sao_Paulo")
    [maintenance] = [d for d in build_deployments() if d.entrypoint == "flows.maintenance.maintenance"]
    assert maintenance.name == "daily"
    assert [(s.schedule.cron, s.schedule.timezone) for s in maintenance.schedules] == [("30 3 * * *", "America/Sao_Paulo")]
    assert (maintenance.paused, maintenance.tags, maintenance.concurrency_limit) == (False, ["vigia"], 1)
    properties = maintenance._parameter_openapi_schema.properties
    assert set(properties) == {"settings_block", "dry_run"} and all(p.get("description") for p in properties.values())


def test_the_health_check_schedule_matches_the_interval_used_for_freshness():
    assert CHECK_INTERVAL.total_seconds() == 300
    assert '- cron: "*/5 * * * *"' in (ROOT / "prefect.yaml").read_text()


def test_a_typo_in_a_schedule_or_a_value_vigia_up_cannot_fill_stops_the_reader_naming_the_deployment(tmp_path, monkeypatch):
    monkeypatch.delenv("VIGIA_NOT_SET", raising=False)
    prefect_file = tmp_path / "prefect.yaml"
    entry = "deployments:\n  - name: nightly\n    entrypoint: flows/backup.py:backup\n"
    cases = {
        '    schedules:\n      - cron: "0 3 * * *"\n        timezon: UTC\n': (
            "prefect.yaml: deployment 'nightly': unknown schedule field timezon; accepts active, anchor_date, cron, day_or, "
            "interval, parameters, replaces, rrule, slug, timezone"
        ),
        '    description: "{{ prefect.variables.motd }}"\n': (
            "prefect.yaml: deployment 'nightly' uses {{ prefect.variables.motd }}, a Prefect variable: vigia up fills only {{ $VAR }}"
        ),
        '    tags: ["{{ $VIGIA_NOT_SET }}"]\n': "prefect.yaml: deployment 'nightly' uses $VIGIA_NOT_SET, which is not set",
    }
    for fields, message in cases.items():
        prefect_file.write_text(entry + fields)
        with pytest.raises(DefinitionError) as raised:
            read_definitions(prefect_file)
        assert str(raised.value) == message
    # A worker's pull steps are filled on the worker, when a run starts: not vigia up's to fill.
    prefect_file.write_text(
        entry + '    pull:\n      - prefect.deployments.steps.set_working_directory:\n          directory: "{{ $VIGIA_NOT_SET }}"\n'
    )
    assert [d.name for d in read_definitions(prefect_file)] == ["nightly"]
