"""deploy/*.service: units systemd accepts as they are (`systemd-analyze verify`, with /opt/vigia read as this
checkout, so every ExecStart must exist), each stopping its process with SIGINT, to it alone."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = ("vigia-up.service", "vigia-worker.service")
KNOWN_GOOD = "[Unit]\nDescription=probe\n[Service]\nExecStart=/bin/true\n"


def verify(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["systemd-analyze", "verify", "--man=no", str(path)], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def systemd_analyze(tmp_path_factory):
    """Skip where systemd-analyze is missing or cannot verify even a one-line unit (some containers)."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    probe = tmp_path_factory.mktemp("probe") / "probe.service"
    probe.write_text(KNOWN_GOOD)
    result = verify(probe)
    if result.returncode != 0:
        pytest.skip(f"systemd-analyze verify cannot run here: {result.stderr.strip()[:200]}")


@pytest.mark.parametrize("unit", UNITS)
def test_the_unit_verifies_cleanly_with_this_checkout_as_opt_vigia(unit, systemd_analyze, tmp_path):
    text = (ROOT / "deploy" / unit).read_text()
    (tmp_path / unit).write_text(text.replace("/opt/vigia", str(ROOT)))
    result = verify(tmp_path / unit)
    assert (result.returncode, result.stderr) == (0, "")


@pytest.mark.parametrize("unit", UNITS)
def test_the_unit_stops_vigia_with_one_sigint_to_the_main_process(unit):
    lines = (ROOT / "deploy" / unit).read_text().splitlines()
    assert {"KillSignal=SIGINT", "KillMode=mixed"} <= set(lines)


def test_a_unit_with_a_mistake_fails_verification(systemd_analyze, tmp_path):
    broken = (ROOT / "deploy" / "vigia-worker.service").read_text().replace("/opt/vigia/.venv/bin/vigia", str(tmp_path / "no-vigia"))
    (tmp_path / "broken.service").write_text(broken)
    result = verify(tmp_path / "broken.service")
    assert result.returncode != 0 and "no-vigia" in result.stderr
