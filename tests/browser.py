"""A real browser for the page tests: headless Chromium from Debian's `chromium` package (.ci/run
installs it), nothing downloaded. A page is opened from a file:// URL with every host name
unresolvable, and what it rendered is read back from the DOM (`--dump-dom`): a copy of the page
gets a small script first, which records console errors, script errors and blocked requests, and
one last, which writes what each chart drew and every resource the page fetched into the DOM.

`python tests/browser.py PAGE.html SHOT.png [HEIGHT]` takes a screenshot (the README's)."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
SECONDS = 120          # one browser run, at most
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
         "--disable-extensions", "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--hide-scrollbars"]

RECORDER = """<script>
window.__problems = [];
(function () {
  var error = console.error;
  console.error = function () {
    window.__problems.push("console.error: " + Array.prototype.map.call(arguments, String).join(" "));
    return error.apply(console, arguments);
  };
  window.addEventListener("error", function (e) { window.__problems.push("error: " + e.message); });
  window.addEventListener("unhandledrejection", function (e) { window.__problems.push("rejection: " + e.reason); });
  document.addEventListener("securitypolicyviolation", function (e) {
    window.__problems.push("blocked by the page's policy: " + e.blockedURI + " (" + e.violatedDirective + ")");
  });
})();
</script>"""

PROBE = """<script>
(function () {
  var tries = 0;
  function drawn(div) {
    return {
      id: div.id,
      traces: (div.data || []).map(function (t) {
        return {name: t.name, type: t.type, x: t.x, y: t.y, z: t.z};
      }),
      bars: div.querySelectorAll("g.point path").length,
      heatmap: div.querySelectorAll("g.hm image").length,
      lines: div.querySelectorAll("path.js-line").length,
      shapes: div.querySelectorAll("path[data-index]").length,
      legend: div.querySelectorAll("g.legend g.traces").length,
      height: div.getBoundingClientRect().height
    };
  }
  function probe() {
    var divs = Array.prototype.slice.call(document.querySelectorAll("div[id^=chart-]"));
    var ready = divs.every(function (div) { return div._fullLayout && div.querySelector("svg.main-svg"); });
    if (!ready && ++tries < 100) { setTimeout(probe, 100); return; }
    var out = document.createElement("pre");
    out.id = "probe";
    out.textContent = JSON.stringify({
      charts: divs.map(drawn),
      problems: window.__problems,
      resources: performance.getEntriesByType("resource").map(function (e) { return e.name; })
    });
    document.body.appendChild(out);
  }
  window.addEventListener("load", function () { setTimeout(probe, 0); });
})();
</script>"""


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    assert BROWSER, "no chromium: apt-get install chromium (.ci/run installs it)"
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([BROWSER, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=SECONDS)


def render(page: Path) -> dict:
    """Open a copy of `page` with the recorder and the probe in it; what the probe found: each
    chart (its traces' data, the SVG elements drawn), the problems recorded, the resources fetched."""
    text = page.read_text(encoding="utf-8")
    probed = page.with_name(page.stem + ".probed.html")
    head = text.index("<head>") + len("<head>")
    end = text.rindex("</body>")
    probed.write_text(text[:head] + RECORDER + text[head:end] + PROBE + text[end:], encoding="utf-8")
    done = _run(["--virtual-time-budget=30000", "--window-size=1280,2000", "--dump-dom", probed.as_uri()])
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"the probe wrote nothing (chromium exit {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


def screenshot(page: Path, png: Path, height: int = 3000) -> None:
    done = _run(["--virtual-time-budget=10000", f"--window-size=1280,{height}", f"--screenshot={png}",
                 page.resolve().as_uri()])
    assert png.exists(), done.stderr[-2000:]


if __name__ == "__main__":
    screenshot(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 3000)
