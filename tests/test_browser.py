"""07_explorer.ipynb in a real browser: JupyterLab on localhost, headless Chromium, Playwright.

The server runs the project's own kernel (``m1lib``) on a free port of 127.0.0.1
with a token; Chromium is Debian's (``/usr/bin/chromium``, installed by
``.ci/run`` when missing): nothing is downloaded at run time. The notebook is
the stored one with its parameters injected by papermill (``prepare_only``) to
point at a tiny replica. A screenshot of the explorer is kept in
``tests/artifacts/`` (gitignored).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "07_explorer.ipynb"
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _installable() -> str | None:
    """Why Chromium cannot be installed here, or None when apt-get could install it."""
    if not shutil.which("apt-get"):
        return "no apt-get"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return "not root (apt-get install needs root)"
    try:
        out = subprocess.run(["apt-cache", "policy", "chromium"], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"apt-cache failed ({exc})"
    if "Candidate:" not in out or "Candidate: (none)" in out:
        return "no chromium package in the apt sources"
    return None


def _require_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    why = _installable()
    if why:
        pytest.skip(f"Chromium is not installed ({CHROMIUM} missing) and cannot be installed here: {why}")
    pytest.fail("Chromium is missing but installable: run `.ci/run` (or `apt-get update && apt-get "
                "install -y chromium`) before the browser test")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A tiny measured replica, the parameterized notebook and a JupyterLab serving it."""
    _require_chromium()
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    import papermill as pm

    from m1lib import synth
    from m1lib.pipeline import load_tables
    from m1lib.report import ensure_kernel

    base = tmp_path_factory.mktemp("lab")
    data = base / "replica"
    synth.generate(data, seed=11, n_als=2, n_hs=2)
    (data / "data_manifest.yaml").write_text("dataset: .\n")
    load_tables(data / "data_manifest.yaml", jobs=2, log=lambda *a: None)
    nbdir = base / "notebooks"
    nbdir.mkdir()
    kernel = ensure_kernel()
    pm.execute_notebook(str(NOTEBOOK), str(nbdir / NOTEBOOK.name), prepare_only=True, kernel_name=kernel,
                        parameters={"manifest": str(data / "data_manifest.yaml"), "out_dir": str(base / "out"),
                                    "figure_formats": ["png"]}, progress_bar=False)
    # a fresh JupyterLab user state; no news prompt over the screenshot, no update checks
    notification = base / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(base / "cfg"), JUPYTER_RUNTIME_DIR=str(base / "rt"),
               JUPYTERLAB_SETTINGS_DIR=str(base / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(base / "ws"),
               )
    log = open(base / "jupyterlab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         "--port-retries=0", f"--IdentityProvider.token={token}", f"--notebook-dir={nbdir}",
         "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.extension_manager=readonly"]
        + (["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=nbdir)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail("JupyterLab did not start:\n" + (base / "jupyterlab.log").read_text()[-3000:])
            time.sleep(0.3)
        yield dict(url=url, token=token, base=base, notebook=NOTEBOOK.name)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


_CANVAS_STATS = """() => {
  // the explorer's image canvas: its size and pixel statistics
  const cs = [...document.querySelectorAll('.m1lib-explorer .m1lib-image canvas')];
  if (!cs.length) return null;
  const c = cs[0];  // ipympl draws the figure on its first canvas (the second is the rubber band)
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0, s = 0, s2 = 0, h = 0;
  for (let i = 0; i < d.length; i += 4) {
    const v = (d[i] + d[i + 1] + d[i + 2]) / 3; n++; s += v; s2 += v * v;
    h = (h * 31 + d[i] + 7 * d[i + 1] + 13 * d[i + 2]) % 1000000007;
  }
  return {w: c.width, h: c.height, mean: s / n, sd: Math.sqrt(Math.max(s2 / n - (s / n) ** 2, 0)), hash: h};
}"""

_NOTEBOOK_STATE = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  if (!w || !w.content || !w.content.model) return null;
  const cells = [...w.content.model.cells];
  const code = cells.filter(c => c.type === 'code');
  const errors = [];
  for (const c of code) for (const o of c.outputs.toJSON())
    if (o.output_type === 'error') errors.push(o.ename + ': ' + o.evalue);
  const kernel = w.context.sessionContext.session && w.context.sessionContext.session.kernel;
  return {n: code.length, done: code.filter(c => c.executionCount !== null).length,
          errors, kernel: kernel ? kernel.name : null, status: kernel ? kernel.status : null};
}"""


def test_explorer_in_jupyterlab(lab, tmp_path):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1700, "height": 1500})
        try:
            page = ctx.new_page()
            page.goto(f"{lab['url']}/lab/tree/{lab['notebook']}?token={lab['token']}")
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget "
                                   "&& window.jupyterapp.shell.currentWidget.content "
                                   "&& window.jupyterapp.shell.currentWidget.context.sessionContext.session "
                                   "&& window.jupyterapp.shell.currentWidget.context.sessionContext.session.kernel",
                                   timeout=60_000)
            state = page.evaluate(_NOTEBOOK_STATE)
            assert state["kernel"] == "m1lib", state
            page.wait_for_function("() => window.jupyterapp.shell.currentWidget.context.sessionContext"
                                   ".session.kernel.status === 'idle'", timeout=60_000)
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.wait_for_function(f"() => {{ const s = ({_NOTEBOOK_STATE})(); "
                                   "return s && (s.errors.length > 0 || (s.done === s.n && s.status === 'idle')); }",
                                   timeout=120_000)
            state = page.evaluate(_NOTEBOOK_STATE)
            assert state["errors"] == [], state["errors"]

            app = page.locator(".m1lib-explorer")
            app.wait_for(timeout=30_000)
            app.scroll_into_view_if_needed()
            page.wait_for_function(f"() => {{ const s = ({_CANVAS_STATS})(); return s && s.w > 300 && s.sd > 5; }}",
                                   timeout=30_000)
            before = page.evaluate(_CANVAS_STATS)
            assert before["w"] >= 400 and before["h"] >= 400 and before["sd"] > 5, before  # an image, not blank
            clinical = app.locator(".widget-html").first
            assert "sub-ALS01" in clinical.inner_text()

            # change the participant: the dropdown is the app's first <select>
            app.locator("select").first.select_option(label=app.locator("select").first.locator(
                "option", has_text="sub-ALS02").inner_text())
            page.wait_for_function("() => document.querySelector('.m1lib-explorer').innerText.includes('sub-ALS02 (ALS)')",
                                   timeout=30_000)
            page.wait_for_function(f"() => {{ const s = ({_CANVAS_STATS})(); return s && s.hash !== {before['hash']}; }}",
                                   timeout=30_000)
            after = page.evaluate(_CANVAS_STATS)
            assert after["sd"] > 5
            page.wait_for_timeout(500)   # let the scatter plot's redraw land
            shot = ARTIFACTS / "explorer_jupyterlab.png"
            app.screenshot(path=str(shot))
            page.screenshot(path=str(ARTIFACTS / "explorer_jupyterlab_page.png"))
            assert shot.stat().st_size > 50_000

            # the annotator, live: in click mode a click on the image moves the caliper's point
            app.get_by_role("button", name="click on image places point").click()
            box = app.locator(".m1lib-image canvas").first.bounding_box()
            app.locator(".m1lib-image canvas").last.click(
                position={"x": box["width"] * 0.62, "y": box["height"] * 0.40})
            page.wait_for_function("() => document.querySelector('.m1lib-explorer').innerText.includes('(unsaved)')",
                                   timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "explorer_jupyterlab_click.png"))
        finally:
            ctx.close()
    (ARTIFACTS / "explorer_jupyterlab.json").write_text(json.dumps(
        {"seconds_in_browser": round(time.monotonic() - t0, 1), "before": before, "after": after}, indent=1))
