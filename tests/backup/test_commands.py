"""clients/commands: what a failed long-running process reports, with its secrets masked."""

from __future__ import annotations

import pytest

from clients import commands
from clients.commands import CommandFailed

SCRIPT = "echo 'connecting to redis://app:hunter2-pass@cache:6379/0 with token tok-5ecret-77'; echo 'fatal: it went wrong' >&2; exit 3"


def test_a_background_process_that_dies_reports_its_argv_and_log_tail_with_secrets_masked(tmp_path):
    argv = ("sh", "-c", SCRIPT, "redis://app:hunter2-pass@cache:6379/0", "--token", "tok-5ecret-77")

    with pytest.raises(CommandFailed) as caught:
        with commands.background(
            argv,
            env=commands.environment(),
            ready=lambda: False,
            timeout=30,
            log_path=tmp_path / "log",
            secrets=("tok-5ecret-77",),
        ):
            pass

    error = caught.value
    said = f"{error} {error.argv} {error.stderr_tail}"
    assert "hunter2-pass" not in said and "tok-5ecret-77" not in said
    assert error.argv[3:] == ("redis://app:***@cache:6379/0", "--token", "***")
    assert error.stderr_tail == "connecting to redis://app:***@cache:6379/0 with token ***\nfatal: it went wrong\n"
    assert str(error) == "sh failed (exit 3): fatal: it went wrong"
