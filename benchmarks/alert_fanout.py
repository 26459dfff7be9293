"""Benchmark alert fan-out: from a stored DOWN transition to delivery at four loopback channels, one hanging.

Each iteration stores a fresh DOWN for a critical target and runs the notifier's body
(`notify_changes.fn`, no Prefect server) against an Apprise YAML with four `critical` channels on
127.0.0.1: two json:// webhooks (telegram, discord) and evolution:// to the fake Evolution API, all
fast, and one json:// webhook that never answers until its read timeout. The clock runs from the
call to the moment the last fast channel has the message, not to the call's return (which waits
for the hanging channel). The baseline sends the same alert to the same four URLs with a plain
`apprise.Apprise().async_notify`. A short notifier run without the hanging channel shows whether
the hang delays the others.

    uv run python benchmarks/alert_fanout.py

The last line is `alert_fanout: p95 X.XX s to the fast channels (direct apprise.notify: Y.YY s, ratio R.RR)`.
Goals: ratio ≤ 1.5; the hanging channel delays no other.
"""

import asyncio  # noqa: E402
import gc  # noqa: E402
import logging  # noqa: E402
import shutil
import statistics  # noqa: E402
import tempfile
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from contextlib import ExitStack  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402
from pathlib import Path

import apprise  # noqa: E402
from hermetic import PREFECT_HOME  # noqa: E402,I001 — first: sets up the environment before Prefect loads
from starlette.types import ASGIApp, Message, Receive, Scope, Send  # noqa: E402

from tests.fakes.capture import CaptureServer  # noqa: E402
from tests.fakes.evolution import FakeEvolution  # noqa: E402
from tests.fakes.server import serve_app  # noqa: E402

ITERATIONS = 20
NO_HANG_ITERATIONS = 5
HANG_READ_TIMEOUT_SECONDS = 2.0  # Apprise's `rto` on the hanging channel: every call waits this long
ARRIVAL_TIMEOUT_SECONDS = 10.0
EVOLUTION_KEY = "evo-apikey-bench"
EVOLUTION_INSTANCE = "ops"
ANCHOR_TARGET = "anchor-db"  # a critical target kept UP, so the notifier never sees a total outage
PAIR_TARGETS = ("svc-pair-a", "svc-pair-b")  # two DOWNs claimed by one notifier run


class StampedEvolution:
    """ASGI wrapper around the fake Evolution app: stamps time.monotonic() when it accepts a sendText."""

    def __init__(self, fake: FakeEvolution):
        self.fake = fake
        self.app: ASGIApp = fake.app
        self.arrivals: list[tuple[float, str]] = []  # (monotonic time, text), appended by the server thread

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/message/sendText/"):
            await self.app(scope, receive, send)
            return

        async def stamped_send(message: Message) -> None:
            # 201 is sent only after the fake appended the message to `sent`: the moment it was accepted.
            if message["type"] == "http.response.start" and message["status"] == 201:
                self.arrivals.append((time.monotonic(), self.fake.sent[-1].text))
            await send(message)

        await self.app(scope, receive, stamped_send)


class FullCollections:
    """Records the interpreter's full (generation 2) garbage collections, which pause every thread."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.monotonic()
        else:
            self.spans.append((self._started, time.monotonic()))

    def within(self, start: float, end: float) -> float:
        """Seconds of full collection between two monotonic times."""
        return sum(min(stop, end) - max(begin, start) for begin, stop in self.spans if begin < end and stop > start)


# One full collection walks the whole heap (Prefect, pydantic, SQLAlchemy and the fakes' servers share
# this process) and takes over 0.1 s; with 20 samples the p95 swings with the side it lands on.
FULL_COLLECTIONS = FullCollections()


@dataclass(frozen=True)
class Channels:
    """The running loopback channels and the Apprise URLs that reach them."""

    capture: CaptureServer
    evolution: StampedEvolution
    fast_urls: tuple[str, ...]
    hang_url: str

    def urls(self, with_hang: bool = True) -> tuple[str, ...]:
        """The fast URLs, plus the hanging one when asked."""
        return self.fast_urls + ((self.hang_url,) if with_hang else ())


@dataclass(frozen=True)
class Sample:
    """One iteration: seconds to the last fast channel's arrival and to the call's return, and the stored deliveries."""

    fast_seconds: float
    call_seconds: float
    deliveries: tuple = ()  # the notifier's, as stored; empty for the direct send
    gc_seconds: float = 0.0  # full garbage collection inside the timed window


def build_channels(capture: CaptureServer, evolution: StampedEvolution, capture_base: str, evolution_base: str) -> Channels:
    """Return the four channels' URLs: telegram and discord webhooks, Evolution, and the hanging webhook."""
    capture_host, evolution_host = capture_base.removeprefix("http://"), evolution_base.removeprefix("http://")
    fast = (
        f"json://bot:chat-token@{capture_host}/ok/telegram",
        f"json://{capture_host}/ok/discord",
        f"evolution://{EVOLUTION_KEY}@{evolution_host}/{EVOLUTION_INSTANCE}/+5511999990000",
    )
    return Channels(capture, evolution, fast, f"json://{capture_host}/hang/slow?rto={HANG_READ_TIMEOUT_SECONDS:g}")


def routes_yaml(urls: tuple[str, ...]) -> str:
    """An Apprise YAML routing every URL on the `critical` tag, as alerts.example.yaml does."""
    lines = ["urls:"]
    for url in urls:
        lines += [f"  - {url}:", "      - tag: critical"]
    return "\n".join(lines) + "\n"


def wait_for_evolution(evolution: StampedEvolution, needle: str) -> float:
    """Return when the fake Evolution accepted the text containing `needle`; TimeoutError after the deadline."""
    deadline = time.monotonic() + ARRIVAL_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        for arrived_at, text in list(evolution.arrivals):
            if needle in text:
                return arrived_at
        time.sleep(0.005)
    raise TimeoutError(f"Evolution got no message with {needle!r} within {ARRIVAL_TIMEOUT_SECONDS:.0f} s")


def fast_arrivals(channels: Channels, target: str) -> dict[str, float]:
    """Return, per fast channel, the monotonic time its message about `target` arrived."""
    title = f"[CRITICAL] {target} is DOWN"
    arrivals = {}
    for name in ("telegram", "discord"):
        [captured] = channels.capture.wait_for(
            lambda c, name=name: c.path == f"/ok/{name}" and (c.json or {}).get("title") == title,
            timeout=ARRIVAL_TIMEOUT_SECONDS,
        )
        arrivals[name] = captured.received_at
    arrivals["evolution"] = wait_for_evolution(channels.evolution, f"{target} is DOWN")
    return arrivals


def hang_arrived(channels: Channels, target: str) -> bool:
    """Whether the hanging channel received the message about `target` (it must be tried, only not answered)."""
    title = f"[CRITICAL] {target} is DOWN"
    return any(c.path == "/hang/slow" and (c.json or {}).get("title") == title for c in channels.capture.received)


def store_down(store_url: str, target: str) -> None:
    """Store one failing probe that moves a new critical target straight to DOWN, opening its incident."""
    from store.probes import ProbeResult
    from store.states import record_probe

    result = ProbeResult(target, "tcp", datetime.now(timezone.utc), False, "critical", reason="connection refused")
    _, change = record_probe(store_url, result, critical=True, confirm_after=timedelta(0))
    if change is None or change.new_state != "DOWN":
        raise RuntimeError(f"{target}: the failing probe stored no DOWN transition ({change})")


def run_notifier(store_url: str, context, health_targets, channels: Channels, target: str, with_hang: bool) -> Sample:
    """Store a DOWN for `target`, run the notifier once, and check what it stored for the alert."""
    from prefect.logging import disable_run_logger

    from tasks.notifier import notify_changes

    store_down(store_url, target)
    started = time.monotonic()
    with disable_run_logger():
        alerts = asyncio.run(notify_changes.fn(context, health_targets, "bench"))
    call_seconds = time.monotonic() - started
    down = [alert for alert in alerts if alert.kind == "down" and alert.target == target]
    if len(down) != 1:
        raise RuntimeError(f"{target}: the notifier raised {[(a.kind, a.target) for a in alerts]}, not one DOWN alert")
    deliveries = expect_deliveries(store_url, down[0].id, with_hang)
    last = max(fast_arrivals(channels, target).values())
    return Sample(last - started, call_seconds, tuple(deliveries), FULL_COLLECTIONS.within(started, last))


def expect_deliveries(store_url: str, alert_id: int, with_hang: bool) -> list:
    """Fail the benchmark unless the fast channels succeeded and the hanging one (if present) did not.

    Apprise reports a read timeout as a connection error, so the hanging channel is stored as a failure.
    """
    from store.alerts import list_deliveries
    from store.database import open_session

    with open_session(store_url) as session:
        deliveries = list_deliveries(session, alert_id)
    statuses = sorted(("hang" if "/hang/" in d.channel else "fast", d.status != "success") for d in deliveries)
    expected = [("fast", False)] * 3 + ([("hang", True)] if with_hang else [])
    if statuses != expected:
        raise RuntimeError(f"alert {alert_id}: stored deliveries {[(d.channel, d.status, d.reason) for d in deliveries]}")
    return deliveries


def run_direct(direct: apprise.Apprise, channels: Channels, target: str) -> Sample:
    """Send the same alert to the same URLs with plain Apprise; time it to the last fast arrival."""
    title = f"[CRITICAL] {target} is DOWN"
    body = f"{target} is DOWN since now (0 min).\nReason: connection refused\nDashboard: http://127.0.0.1:8501"
    started = time.monotonic()
    result = asyncio.run(direct.async_notify(body=body, title=title, tag="critical", notify_type=apprise.NotifyType.FAILURE))
    call_seconds = time.monotonic() - started
    if not hang_arrived(channels, target) or bool(result):
        raise RuntimeError(f"{target}: direct Apprise did not try the hanging channel or reported success ({result})")
    last = max(fast_arrivals(channels, target).values())
    return Sample(last - started, call_seconds, gc_seconds=FULL_COLLECTIONS.within(started, last))


def percentile(values: list[float], fraction: float) -> float:
    """Return the `fraction` percentile, interpolated between the closest ranks."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    lower = int(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def describe(label: str, samples: list[Sample]) -> str:
    """One detail line: p50/p95/max to the fast channels, full GC pauses in them, and the call's own p50/max."""
    fast = [s.fast_seconds for s in samples]
    call = [s.call_seconds for s in samples]
    paused = [s.gc_seconds for s in samples if s.gc_seconds > 0]
    return (
        f"  {label}: to the fast channels p50 {percentile(fast, 0.5):.3f} s, p95 {percentile(fast, 0.95):.3f} s, "
        f"max {max(fast):.3f} s (a full GC paused {len(paused)} of {len(samples)}, {sum(paused):.3f} s in all); "
        f"the call returned after p50 {statistics.median(call):.2f} s, max {max(call):.2f} s"
    )


def measure(notifier: Callable[[str], Sample], direct: Callable[[str], Sample]) -> tuple[list[Sample], list[Sample]]:
    """Run the notifier and the direct send ITERATIONS times each, interleaved, after one warm-up each."""
    warm_notifier, warm_direct = notifier("warm-notifier"), direct("warm-direct")
    print(
        f"warm-up (not counted): notifier {warm_notifier.fast_seconds:.3f} s, direct {warm_direct.fast_seconds:.3f} s to the fast channels"
    )
    notifier_samples, direct_samples = [], []
    for index in range(ITERATIONS):
        notifier_samples.append(notifier(f"svc-notifier-{index:03d}"))
        direct_samples.append(direct(f"svc-direct-{index:03d}"))
    return notifier_samples, direct_samples


def start_channels(stack: ExitStack) -> Channels:
    """Serve the capture server and the fake Evolution on loopback until the stack closes."""
    capture = CaptureServer(hang_seconds=60)  # the hanging request also ends when Apprise hangs up
    capture_base = stack.enter_context(capture.serving())
    evolution = StampedEvolution(FakeEvolution(api_key=EVOLUTION_KEY, instances={EVOLUTION_INSTANCE: "open"}))
    evolution_base = stack.enter_context(serve_app(evolution))
    return build_channels(capture, evolution, capture_base, evolution_base)


def prepare_store(store_url: str):
    """Migrate the store, keep one critical target UP, and return the HealthTargets of every benchmark target."""
    from store.database import migrate
    from store.probes import ProbeResult
    from store.states import record_probe
    from tests.tasks.alerting_setup import targets

    migrate(store_url)
    anchor = ProbeResult(ANCHOR_TARGET, "tcp", datetime.now(timezone.utc), True, "ok", reason="connected")
    record_probe(store_url, anchor, critical=True, confirm_after=timedelta(0))
    names = [ANCHOR_TARGET, "warm-notifier"] + [f"svc-notifier-{i:03d}" for i in range(ITERATIONS)]
    names += [f"svc-nohang-{i:03d}" for i in range(NO_HANG_ITERATIONS)] + list(PAIR_TARGETS)
    return targets(*((name, True, []) for name in names))


def build_direct(channels: Channels) -> apprise.Apprise:
    """A plain Apprise object holding the same four URLs, each tagged critical."""
    direct = apprise.Apprise()
    for url in channels.urls():
        if not direct.add(url, tag="critical"):
            raise RuntimeError(f"Apprise did not accept {url}")
    return direct


def run_pair(store_url: str, context, health_targets, channels: Channels) -> tuple[list[float], float]:
    """Store two DOWNs, run the notifier once; return each alert's seconds to its last fast arrival, and the call's."""
    from prefect.logging import disable_run_logger

    from tasks.notifier import notify_changes

    for target in PAIR_TARGETS:
        store_down(store_url, target)
    started = time.monotonic()
    with disable_run_logger():
        asyncio.run(notify_changes.fn(context, health_targets, "bench"))
    call_seconds = time.monotonic() - started
    return [max(fast_arrivals(channels, target).values()) - started for target in PAIR_TARGETS], call_seconds


def report_hang_effect(with_hang: list[Sample], without_hang: list[Sample], pair: list[float], pair_call: float) -> None:
    """Print how much the hanging channel delayed the fast channels of its own alert and of the next alert."""
    with_p50 = percentile([s.fast_seconds for s in with_hang], 0.5)
    without_p50 = percentile([s.fast_seconds for s in without_hang], 0.5)
    slowest = max(s.fast_seconds for s in with_hang)
    verdict = "DELAYED by the hang" if slowest >= HANG_READ_TIMEOUT_SECONDS / 2 else "no other channel waited for it"
    print(
        f"  same alert: the hanging channel moved the fast channels' p50 by {with_p50 - without_p50:+.3f} s; "
        f"slowest fast arrival {slowest:.3f} s vs its {HANG_READ_TIMEOUT_SECONDS:g} s read timeout: {verdict}"
    )
    # The notifier sends a run's alerts one after another, so a later alert can wait out an earlier one's hang.
    verdict = "DELAYED, it waited for the first alert's hanging channel" if pair[1] >= HANG_READ_TIMEOUT_SECONDS / 2 else "not delayed"
    print(
        f"  next alert: with two DOWNs in one notifier run the first reached the fast channels in {pair[0]:.3f} s, "
        f"the second in {pair[1]:.3f} s (call {pair_call:.2f} s): {verdict}"
    )


def main() -> None:
    """Start the loopback channels and a SQLite store, time both fan-outs, print the result lines."""
    from store.database import get_engine
    from tests.tasks.alerting_setup import alert_context

    total_started = time.perf_counter()
    # Every call logs the hanging channel's read timeout at WARNING; the stored deliveries are checked instead.
    logging.getLogger("apprise").setLevel(logging.ERROR)
    gc.callbacks.append(FULL_COLLECTIONS)
    home = Path(tempfile.mkdtemp(prefix="vigia-bench-home-"))
    store_url = f"sqlite:///{home / 'vigia.db'}"
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, PREFECT_HOME, ignore_errors=True)  # also when a check fails
        stack.callback(shutil.rmtree, home, ignore_errors=True)
        channels = start_channels(stack)
        health_targets = prepare_store(store_url)
        stack.callback(get_engine(store_url).dispose)
        contexts = {hang: alert_context(store_url, routes_yaml(channels.urls(hang))) for hang in (True, False)}
        direct = build_direct(channels)
        print(
            f"4 channels on 127.0.0.1 tagged critical: telegram and discord (json://), evolution://, and one json:// "
            f"hanging until its {HANG_READ_TIMEOUT_SECONDS:g} s read timeout (every call waits for it); "
            f"{ITERATIONS} alerts each, interleaved"
        )

        notifier_samples, direct_samples = measure(
            lambda target: run_notifier(store_url, contexts[True], health_targets, channels, target, with_hang=True),
            lambda target: run_direct(direct, channels, target),
        )
        print(describe("notifier (notify_changes)", notifier_samples))
        print(describe("direct apprise.async_notify", direct_samples))
        print(
            "  last notifier alert as stored: "
            + ", ".join(
                f"{'hanging' if '/hang/' in d.channel else d.service} {d.status} in {d.elapsed_ms / 1000:.3f} s ({d.attempts} attempt(s))"
                for d in notifier_samples[-1].deliveries
            )
        )
        no_hang = [
            run_notifier(store_url, contexts[False], health_targets, channels, f"svc-nohang-{i:03d}", with_hang=False)
            for i in range(NO_HANG_ITERATIONS)
        ]
        print(describe(f"notifier without the hanging channel ({NO_HANG_ITERATIONS} alerts)", no_hang))
        pair, pair_call = run_pair(store_url, contexts[True], health_targets, channels)
        report_hang_effect(notifier_samples, no_hang, pair, pair_call)
    notifier_p95 = percentile([s.fast_seconds for s in notifier_samples], 0.95)
    direct_p95 = percentile([s.fast_seconds for s in direct_samples], 0.95)
    print(f"total benchmark wall time {time.perf_counter() - total_started:.0f} s")
    print(
        f"alert_fanout: p95 {notifier_p95:.2f} s to the fast channels "
        f"(direct apprise.notify: {direct_p95:.2f} s, ratio {notifier_p95 / direct_p95:.2f})"
    )


if __name__ == "__main__":
    main()
