"""Flow runs for the transcriber's batches: created Pending under a name, a tag per note and an idempotency key; a dead holder's runs closed as Crashed."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from uuid import UUID

from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterIdempotencyKey
from prefect.client.schemas.objects import FlowRun
from prefect.context import SettingsContext, get_settings_context
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.settings import PREFECT_CLIENT_MAX_RETRIES
from prefect.states import Crashed, Pending

from store.voice_note_queue import ClaimedNote

logger = logging.getLogger(__name__)
DEPLOYMENT = "transcribe-voice-note/on-webhook"
CREATE_PATIENCE_SECONDS = 10.0
MAX_TAGGED_NOTES = 50  # tags beyond this add nothing the parameter does not already show


def run_name(ids: list[int]) -> str:
    """`voice-note-<id>` for one note, `voice-notes-<first>-<last>` for a batch (each note is also a tag)."""
    return f"voice-note-{ids[0]}" if len(ids) == 1 else f"voice-notes-{ids[0]}-{ids[-1]}"


def idempotency_key(token: str) -> str:
    """The key a claim's run is created under: creating it again after a crash returns the same run."""
    return f"voice-notes-{token}"


class RunMaker:
    """Creates and closes runs through one shared client (each run would otherwise build its own, ~50 ms of CPU)."""

    def __init__(self):
        self._client: PrefectClient | None = None
        self._deployment_id: UUID | None = None
        self._creating = asyncio.Lock()
        settings = get_settings_context()
        # Built once: copying Prefect's settings costs ~100 ms of CPU.
        self._no_retries = SettingsContext(
            profile=settings.profile, settings=settings.settings.copy_with_update(updates={PREFECT_CLIENT_MAX_RETRIES: 0})
        )

    async def create(self, token: str, ids: list[int]) -> FlowRun:
        """Create the batch's run Pending (the served runner takes only Scheduled runs, so only this process runs it)."""
        # One creation at a time: Prefect's SQLite server answers concurrent creations with 503
        # "database is locked", and its client then backs off for seconds (measured).
        async with self._creating:
            client = await self._open()
            if self._deployment_id is None:
                self._deployment_id = (await client.read_deployment_by_name(DEPLOYMENT)).id
            try:
                return await self._create_promptly(client, token, ids)
            except ObjectNotFound:
                self._deployment_id = None  # re-created under a new id: look it up again next time
                raise

    async def close_dead_runs(self, claimed: list[ClaimedNote]) -> int:
        """Mark Crashed the unfinished runs of notes taken from a holder that died (recorded or only created); return how many."""
        run_ids = {UUID(note.old_flow_run_id) for note in claimed if note.old_flow_run_id}
        keys = {idempotency_key(note.old_token) for note in claimed if note.old_token and not note.old_flow_run_id}
        if not run_ids and not keys:
            return 0
        client = await self._open()
        runs: list[FlowRun] = []
        if run_ids:
            runs += await client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=sorted(run_ids))))
        if keys:
            runs += await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(idempotency_key=FlowRunFilterIdempotencyKey(any_=sorted(keys)))
            )
        closed = 0
        for run in runs:
            if run.state is None or run.state.is_final():
                continue
            message = "its transcriber stopped renewing the lease (the process died); the notes were taken by another claim"
            await client.set_flow_run_state(run.id, Crashed(message=message), force=True)
            closed += 1
            logger.warning("run %s (%s) marked Crashed: %s", run.name, run.id, message)
        return closed

    async def read_shared_concurrency(self, name: str) -> int | None:
        """The limit of a global concurrency limit as edited in the UI; None when it does not exist or Prefect is away."""
        try:
            client = await self._open()
            return (await client.read_global_concurrency_limit_by_name(name)).limit
        except Exception:  # the local bound holds meanwhile
            return None

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.__aexit__(None, None, None)

    async def _open(self) -> PrefectClient:
        if self._client is None:
            client = get_client()
            await client.__aenter__()  # raises while Prefect is down: the notes stay queued
            self._client = client
        return self._client

    async def _create_promptly(self, client: PrefectClient, token: str, ids: list[int]) -> FlowRun:
        """Create the run, retrying a busy SQLite server within milliseconds (its client would wait 2, 4, 8… s)."""
        deadline = time.monotonic() + CREATE_PATIENCE_SECONDS
        tags = [f"voice-note-{note_id}" for note_id in ids[:MAX_TAGGED_NOTES]]
        while True:
            try:
                with self._no_retries:
                    return await client.create_flow_run_from_deployment(
                        self._deployment_id,
                        parameters={"voice_note_ids": ids},
                        name=run_name(ids),
                        tags=tags,
                        idempotency_key=idempotency_key(token),
                        state=Pending(message="started by a transcriber"),
                    )
            except PrefectHTTPStatusError as error:
                if error.response.status_code != 503 or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(random.uniform(0.05, 0.25))
