"""report.html in a real browser: headless Chromium opens it from disk.

How: Chromium's DevTools protocol over `--remote-debugging-pipe` (JSON messages ended by
NUL on file descriptors 3 and 4). No port, no websocket library, nothing to race for; the
test sees every console message, uncaught exception and network request as an event, can
drive the page's controls with Runtime.evaluate, and takes the screenshot itself. (The
simpler `--dump-dom` / `--screenshot` switches can't tell a console error from noise on
stderr, nor list requests.) Skipped when Chromium is not installed (`apt-get install
chromium`); CI installs it.

The screenshot lands in tests/artifacts/report.png; with NETPOL_UPDATE_SCREENSHOT=1 it is
also copied to docs/report.png for the README.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from discover.enrichment.peers import workload_of
from reports.graph_svg import choose_layout
from reports.html import render_html
from tests.reports_sample import big_report, shop_report

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"),
                             shutil.which("google-chrome")) if p), None)
WIDTH, HEIGHT = 1400, 2000
LAYOUT = choose_layout("auto")  # as `analyze` chooses on this machine
TIMEOUT_S = 60.0

pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason="Chromium not installed (Debian package chromium)")


class DevTools:
    """A minimal DevTools protocol client over the two pipes."""

    def __init__(self, process: subprocess.Popen[bytes], write_fd: int, read_fd: int) -> None:
        self.process = process
        self.write_fd = write_fd
        self.read_fd = read_fd
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from Chromium")
            ready, _, _ = select.select([self.read_fd], [], [], left)
            if ready:
                chunk = os.read(self.read_fd, 1 << 20)
                if not chunk:
                    raise EOFError(f"Chromium closed the pipe (exit {self.process.poll()})")
                self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        parsed: dict[str, Any] = json.loads(message)
        return parsed

    def call(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method,
                                   "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            if "method" in reply:
                self.events.append(reply)

    def wait_event(self, method: str) -> dict[str, Any]:
        for event in self.events:
            if event["method"] == method:
                return event
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            event = self._read_message(deadline)
            if "method" in event:
                self.events.append(event)
                if event["method"] == method:
                    return event

    def evaluate(self, session: str, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression,
                                                "returnByValue": True,
                                                "awaitPromise": True}, session)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    assert CHROMIUM is not None
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()

    def wire_pipes() -> None:  # runs in the child before exec: fds 3 and 4 are the pipes
        # Copied high first: either pipe end may itself be descriptor 3 or 4.
        high_r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
        high_w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
        os.dup2(high_r, 3)
        os.dup2(high_w, 4)

    # pass_fds: the child closes every other descriptor after wire_pipes ran.

    args = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
        "--hide-scrollbars", "--mute-audio", "--force-device-scale-factor=1",
        f"--window-size={WIDTH},{HEIGHT}", f"--user-data-dir={tmp_path / 'profile'}",
        "--remote-debugging-pipe", "about:blank",
    ]
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, preexec_fn=wire_pipes,
                               pass_fds=(3, 4))
    os.close(to_child_r)
    os.close(from_child_w)
    client = DevTools(process, to_child_w, from_child_r)
    try:
        yield client
    finally:
        try:
            client.call("Browser.close")
        except (OSError, EOFError, TimeoutError, RuntimeError):
            pass
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        os.close(to_child_w)
        os.close(from_child_r)


def _open(browser: DevTools, url: str) -> str:
    target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})
    session_id: str = session["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.call(f"{domain}.enable", session=session_id)
    browser.call("Emulation.setDeviceMetricsOverride",
                 {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
                 session_id)
    browser.call("Page.navigate", {"url": url}, session_id)
    browser.wait_event("Page.loadEventFired")
    return session_id


def _problems(browser: DevTools, page_url: str) -> list[str]:
    found = []
    for event in browser.events:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.exceptionThrown":
            found.append(f"exception: {params['exceptionDetails']}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in (
                "error", "warning", "assert"):
            found.append(f"console {params['type']}: {params.get('args')}")
        elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
            found.append(f"log: {params['entry']}")
        elif method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if url != page_url and not url.startswith("data:"):
                found.append(f"request: {url}")
    return found


def test_sample_report_in_chromium(browser: DevTools, tmp_path: Path) -> None:
    report = shop_report()
    page = tmp_path / "report.html"
    page.write_text(render_html(report, LAYOUT), encoding="utf-8")
    url = page.as_uri()
    session = _open(browser, url)

    # The page as it first shows: the screenshot for people (and the README).
    shot = browser.call("Page.captureScreenshot", {"format": "png"}, session)
    ARTIFACTS.mkdir(exist_ok=True)
    png = base64.b64decode(shot["data"])
    assert png.startswith(b"\x89PNG") and len(png) > 50_000
    (ARTIFACTS / "report.png").write_bytes(png)
    if os.environ.get("NETPOL_UPDATE_SCREENSHOT") == "1":
        (REPO / "docs" / "report.png").write_bytes(png)

    # The graph is drawn: every workload of the sample is a node with a real size.
    workloads = {str(w) for e in report.graph.edges for p in (e.source, e.destination)
                 if (w := workload_of(p)) is not None}
    boxes = browser.evaluate(session, """
        Array.from(document.querySelectorAll('#graph-workloads g.node.kind-workload'))
          .map(g => { const r = g.getBoundingClientRect(); return [r.width, r.height]; })""")
    assert len(boxes) == len(workloads)
    assert all(w > 20 and h > 10 for w, h in boxes)

    # Tables filter and sort through the inline script.
    flows = len(report.flows)
    count = browser.evaluate(session, "document.querySelector('[data-count=flows-table]')"
                                      ".textContent")
    assert count == f"{flows} of {flows} rows"
    shown = browser.evaluate(session, """(() => {
        const input = document.querySelector('input[data-filter=flows-table]');
        input.value = 'coredns'; input.dispatchEvent(new Event('input'));
        return Array.from(document.querySelectorAll('#flows-table tbody tr'))
          .filter(r => r.style.display !== 'none').length; })()""")
    expected = sum(1 for row in report.flows if row.dst_port == 53)
    assert 0 < shown <= flows and shown >= expected // 2
    order = browser.evaluate(session, """(() => {
        const headers = Array.from(document.querySelectorAll('#flows-table th'));
        const index = headers.findIndex(th => th.textContent === 'connections');
        headers[index].click(); headers[index].click();  // descending
        return Array.from(document.querySelectorAll('#flows-table tbody tr'))
          .map(r => Number(r.cells[index].getAttribute('data-sort'))); })()""")
    assert len(order) == flows
    assert order == sorted(order, reverse=True)

    # Graph controls: hub links hidden by default, shown on demand; namespace filter dims.
    hidden = browser.evaluate(session, """(() => {
        const hubs = Array.from(document.querySelectorAll('#graph-workloads g.edge.hub'))
          .filter(g => !g.classList.contains('flagged'));
        const before = hubs.filter(g => getComputedStyle(g).display === 'none').length;
        const box = document.querySelector('input[data-role=hubs]');
        box.click();
        const after = hubs.filter(g => getComputedStyle(g).display === 'none').length;
        return [hubs.length, before, after]; })()""")
    assert hidden[0] > 0 and hidden[1] == hidden[0] and hidden[2] == 0
    dimmed = browser.evaluate(session, """(() => {
        const select = document.querySelector('#graph select[data-role=namespace]');
        select.value = 'payments'; select.dispatchEvent(new Event('change'));
        return [document.querySelectorAll('#graph-workloads g.node.dim').length,
                document.querySelectorAll('#graph-workloads g.node:not(.dim)').length]; })()""")
    assert dimmed[0] > 0 and dimmed[1] > 0
    focused = browser.evaluate(session, """(() => {
        const select = document.querySelector('#graph select[data-role=namespace]');
        select.value = ''; select.dispatchEvent(new Event('change'));
        const node = Array.from(document.querySelectorAll('#graph-workloads g.node'))
          .find(g => g.querySelector('title').textContent === 'shop/deployment/mailer');
        node.dispatchEvent(new MouseEvent('click', {bubbles: true}));
        const lit = Array.from(document.querySelectorAll('#graph-workloads g.node:not(.dim)'))
          .map(g => g.querySelector('title').textContent.split('\\n')[0]);
        node.dispatchEvent(new MouseEvent('click', {bubbles: true}));  // and back
        return [lit, document.querySelectorAll('#graph-workloads g.node.dim').length]; })()""")
    # mailer with its clients and its SMTP relay; everything lit again after a second click
    assert {"shop/deployment/mailer", "shop/deployment/checkout", "198.51.100.25"} <= set(
        focused[0])
    assert "shop/statefulset/orders-db" not in focused[0] and focused[1] == 0
    width = browser.evaluate(session, """(() => {
        const svg = document.querySelector('#graph-workloads svg');
        const before = svg.getBoundingClientRect().width;
        document.querySelector('#graph button[data-zoom="1.25"]').click();
        return [before, svg.getBoundingClientRect().width]; })()""")
    assert width[1] > width[0] * 1.2

    assert _problems(browser, url) == []


def test_the_checks_catch_errors_and_requests(browser: DevTools, tmp_path: Path) -> None:
    """The same checks on a page that misbehaves: they must see it (a refused request to
    the loopback discard port, nothing leaves the machine)."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body>'
                    '<img src="http://127.0.0.1:9/x.png">'
                    '<script>console.error("boom"); undefinedFunction();</script>'
                    "</body></html>", encoding="utf-8")
    url = page.as_uri()
    _open(browser, url)
    problems = _problems(browser, url)
    assert any("console error" in p and "boom" in p for p in problems)
    assert any(p.startswith("exception:") and "undefinedFunction" in p for p in problems)
    assert any(p == "request: http://127.0.0.1:9/x.png" for p in problems)


def test_a_hundred_and_forty_workloads_in_chromium(browser: DevTools,
                                                   tmp_path: Path) -> None:
    """The largest report that still draws every workload (WORKLOAD_GRAPH_UP_TO)."""
    page = tmp_path / "big.html"
    page.write_text(render_html(big_report(namespaces=14), LAYOUT), encoding="utf-8")
    url = page.as_uri()
    session = _open(browser, url)
    state = browser.evaluate(session, """(() => {
        const box = document.querySelector('#graph-workloads');
        const svg = box.querySelector('svg');
        const node = svg.querySelector('g.node.kind-workload text');
        const size = parseFloat(getComputedStyle(node).fontSize) *
          svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
        const select = document.querySelector('#graph select[data-role=namespace]');
        select.value = 'team-12'; select.dispatchEvent(new Event('change'));
        return [document.querySelectorAll('#graph-workloads g.node').length, size,
                box.scrollLeft]; })()""")
    nodes, font_px, scrolled = state
    assert nodes >= 142
    assert font_px >= 9  # opened at a legible size, not shrunk to fit
    assert scrolled > 0  # choosing a namespace brings its box into view
    assert _problems(browser, url) == []


def test_a_thousand_workloads_in_chromium(browser: DevTools, tmp_path: Path) -> None:
    """A large report: the namespace overview and one namespace's picture at a time, the
    workload sections drawn from the page's data when searched for."""
    report = big_report(namespaces=40, per_namespace=25)
    page = tmp_path / "large.html"
    page.write_text(render_html(report, LAYOUT), encoding="utf-8")
    url = page.as_uri()
    started = time.monotonic()
    session = _open(browser, url)
    loaded = time.monotonic() - started
    assert loaded < 5, f"loaded in {loaded:.1f} s"
    # No section per workload in the DOM; what is there is mostly the flow table's first
    # 2,000 rows (14 elements each) and the pictures.
    elements = browser.evaluate(session, """[document.getElementsByTagName('*').length,
        document.querySelectorAll('details.wl, .wl-open').length]""")
    assert elements[0] < 45_000 and elements[1] == 0
    found = browser.evaluate(session, """(() => {
        const search = document.querySelector('input[data-role=wl-search]');
        search.value = 'team-17/deployment/svc-04'; search.dispatchEvent(new Event('input'));
        const shown = document.querySelector('[data-role=wl-shown] .wl-open');
        const rows = Array.from(shown.querySelectorAll('table.data tbody tr'))
          .map(r => Array.from(r.cells).map(c => c.textContent));
        return [document.querySelector('[data-role=wl-count]').textContent,
                shown.querySelector('h3 b').textContent, rows]; })()""")
    count, name, rows = found
    # it and the workloads that name it as a peer match; the exact name opens its section
    assert count == "5 of 1002 workloads"
    assert name == "svc-04"
    peers = {row[1] for row in rows}
    # its caller, its callee, the scraper, the cluster DNS, its external name
    assert {"team-17/deployment/svc-03", "team-17/deployment/svc-05",
            "monitoring/statefulset/prometheus"} <= peers
    assert any(row[4].startswith("allowed") for row in rows)
    listed = browser.evaluate(session, """(() => {
        const search = document.querySelector('input[data-role=wl-search]');
        search.value = ''; search.dispatchEvent(new Event('input'));
        const select = document.querySelector('select[data-role=wl-namespace]');
        select.value = 'team-03'; select.dispatchEvent(new Event('change'));
        const buttons = document.querySelectorAll('[data-role=wl-results] button');
        buttons[2].click();
        return [buttons.length,
                document.querySelector('[data-role=wl-shown] h3 b').textContent]; })()""")
    assert listed == [25, "svc-02"]
    # A namespace's picture replaces the one shown.
    picked = browser.evaluate(session, """(() => {
        const select = document.querySelector('select[data-drilldown]');
        select.value = String(Array.from(select.options).findIndex(o => o.text === 'team-05'));
        select.dispatchEvent(new Event('change'));
        return Array.from(document.querySelectorAll('#graph-drill g.node.kind-workload title'))
          .map(t => t.textContent.split('\\n')[0]); })()""")
    assert "team-05/deployment/svc-00" in picked and len(picked) >= 25
    assert not any(name.startswith("team-06/deployment/") for name in picked)
    assert _problems(browser, url) == []
