"""Error rate (DESIGN §11): failed or crashed ÷ finished flow runs, and failed ÷ finished transcriptions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from store.sla.targets import ERROR_RATE_TARGET_PERCENT
from store.sla.transcriptions import transcription_outcomes


@dataclass(frozen=True)
class WorkflowRuns:
    """Flow runs of a window as the Prefect API counts them: finished = completed + failed + crashed."""

    finished: int
    failed: int  # FAILED + CRASHED


@dataclass(frozen=True)
class ErrorRate:
    """Both error rates of a window; the SLA holds only when each is under 1 %."""

    workflow_finished: int | None  # None when the Prefect API was not asked or did not answer
    workflow_failed: int | None
    transcriptions_finished: int
    transcriptions_failed: int

    @property
    def workflow_percent(self) -> float | None:
        """Failed share of finished flow runs, or None without any."""
        return _share(self.workflow_failed, self.workflow_finished)

    @property
    def transcription_percent(self) -> float | None:
        """Failed share of finished transcriptions, or None without any."""
        return _share(self.transcriptions_failed, self.transcriptions_finished)

    @property
    def percent(self) -> float | None:
        """The worse of the two rates, or None when neither has data."""
        rates = [rate for rate in (self.workflow_percent, self.transcription_percent) if rate is not None]
        return max(rates) if rates else None

    @property
    def meets_target(self) -> bool | None:
        """Whether both rates are under 1 %, or None without data."""
        percent = self.percent
        return None if percent is None else percent < ERROR_RATE_TARGET_PERCENT


def error_rate(session: Session, start: datetime, end: datetime, workflow_runs: WorkflowRuns | None) -> ErrorRate:
    """Return the error rates of [start, end): flow runs as counted by the caller from Prefect, transcriptions from the store."""
    outcomes = transcription_outcomes(session, start, end)
    return ErrorRate(
        workflow_finished=None if workflow_runs is None else workflow_runs.finished,
        workflow_failed=None if workflow_runs is None else workflow_runs.failed,
        transcriptions_finished=outcomes.finished,
        transcriptions_failed=outcomes.failed,
    )


def _share(part: int | None, whole: int | None) -> float | None:
    return None if not whole else 100.0 * (part or 0) / whole
