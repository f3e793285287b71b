"""07_explorer.ipynb in a real browser: JupyterLab on localhost, headless Chromium, Playwright.

The server runs the project's own kernel (``m1lib``) on a free port of 127.0.0.1
with a token; Chromium is Debian's (``/usr/bin/chromium``, installed by
``.ci/run`` when missing): nothing is downloaded at run time. The notebook is
the stored one with its parameters injected by papermill (``prepare_only``) to
point at a tiny replica. The window is 1280 px wide with the file browser
open; screenshots of each step are kept in ``tests/artifacts/`` (gitignored).
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
        annotation = data / "derivatives" / "annotations" / "sub-ALS01_desc-m1_markups.mrk.json"
        yield dict(url=url, token=token, base=base, notebook=NOTEBOOK.name,
                   annotation_bytes=annotation.read_bytes())
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


_CANVAS_STATS = """() => {
  // the explorer's image canvas: size, pixel statistics, and how coloured its right strip
  // (the colour bar) is: grey shades have r = g = b, the R2* map's magma does not
  const cs = [...document.querySelectorAll('.m1lib-explorer .m1lib-image canvas')];
  if (!cs.length) return null;
  const c = cs[0];  // ipympl draws the figure on its first canvas (the second is the rubber band)
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0, s = 0, s2 = 0, h = 0, bar = 0, barN = 0;
  for (let i = 0; i < d.length; i += 4) {
    const v = (d[i] + d[i + 1] + d[i + 2]) / 3; n++; s += v; s2 += v * v;
    h = (h * 31 + d[i] + 7 * d[i + 1] + 13 * d[i + 2]) % 1000000007;
    const x = (i / 4) % c.width;
    if (x > 0.835 * c.width && x < 0.86 * c.width) {  // the colour bar (views.image_axes)
      barN++;
      if (Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]) > 60) bar++;
    }
  }
  return {w: c.width, h: c.height, mean: s / n, sd: Math.sqrt(Math.max(s2 / n - (s / n) ** 2, 0)), hash: h,
          coloured_bar: bar / barN};
}"""

_LAYOUT = """() => {
  // does the explorer fit the notebook's visible width, and is any ipympl toolbar shown?
  const app = document.querySelector('.m1lib-explorer');
  const panel = document.querySelector('.jp-NotebookPanel-notebook') || document.querySelector('.jp-Notebook');
  const a = app.getBoundingClientRect(), p = panel.getBoundingClientRect();
  const toolbars = [...app.querySelectorAll('.jupyter-matplotlib-toolbar')]
    .filter(t => t.offsetParent !== null && getComputedStyle(t).display !== 'none'
            && getComputedStyle(t).visibility !== 'hidden');
  let widest = 0;
  for (const el of app.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width > 0) widest = Math.max(widest, r.right);
  }
  const left = window.jupyterapp.shell.leftCollapsed === false;
  const images = [...document.querySelectorAll('.jp-Notebook .jp-OutputArea-output img')].length;
  return {app_right: a.right, panel_right: p.right, widest_right: widest, app_width: a.width,
          scroll: app.scrollWidth - app.clientWidth, toolbars: toolbars.length, file_browser_open: left,
          window_width: window.innerWidth, output_images: images};
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

WIDTH, HEIGHT = 1280, 900


def _wait_canvas_change(page, before: dict, timeout: int = 30_000) -> dict:
    page.wait_for_function(f"() => {{ const s = ({_CANVAS_STATS})(); return s && s.hash !== {before['hash']}; }}",
                           timeout=timeout)
    page.wait_for_timeout(300)   # ipympl may send the image in more than one frame
    return page.evaluate(_CANVAS_STATS)


def _shot(page, locator, name: str) -> Path:
    """A screenshot of the viewport (1280 px wide, file browser open) with ``locator`` in view."""
    locator.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    return path


def test_explorer_in_jupyterlab(lab, tmp_path):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    record: dict = {}
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": WIDTH, "height": HEIGHT}, device_scale_factor=1)
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
            # the file browser open beside the notebook, as a user has it
            page.evaluate("() => window.jupyterapp.commands.execute('filebrowser:activate')")
            page.wait_for_function("() => window.jupyterapp.shell.leftCollapsed === false", timeout=10_000)
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
            first = page.evaluate(_CANVAS_STATS)
            assert first["w"] >= 400 and first["h"] >= 400 and first["sd"] > 5, first  # an image, not blank
            assert "sub-ALS01" in app.locator(".widget-html").nth(1).inner_text()

            # it fits: nothing past the notebook's right edge, no toolbar over the axes, no
            # static snapshot shown above the live app
            fit = page.evaluate(_LAYOUT)
            record["layout"] = fit
            assert fit["file_browser_open"] and fit["window_width"] == WIDTH, fit
            assert fit["widest_right"] <= fit["panel_right"] + 1 and fit["scroll"] <= 1, fit
            assert fit["toolbars"] == 0 and fit["output_images"] == 0, fit
            _shot(page, app.locator(".m1lib-image"), "explorer_1280_default.png")

            # every view option renders: the whole slice is an image, not a blank panel
            zoom = app.locator("select").nth(1)
            assert zoom.inner_text().replace("\xa0", " ").startswith("whole slice")   # ipywidgets: nbsp
            zoom.select_option(index=0)
            whole = _wait_canvas_change(page, first)
            assert whole["sd"] > 5, whole
            _shot(page, app.locator(".m1lib-image"), "explorer_1280_whole_slice.png")

            # the R2* map comes with a colour bar (coloured, labelled with its units)
            assert first["coloured_bar"] < 0.02, first                  # grey bar on an echo
            app.get_by_role("button", name="R2*", exact=True).click()
            page.wait_for_function("() => document.querySelector('.m1lib-explorer').innerText"
                                   ".includes('Colour bar: R2* (1/s)')", timeout=30_000)
            r2 = _wait_canvas_change(page, whole)
            record["r2star"] = r2
            assert r2["sd"] > 5 and r2["coloured_bar"] > 0.3, r2
            _shot(page, app.locator(".m1lib-image"), "explorer_1280_r2star.png")

            # a degenerate caliper: two clicks a few screen pixels apart; Save is refused and
            # the reason appears beside the Save button
            zoom.select_option(label="L_hand")
            back = _wait_canvas_change(page, r2)
            app.get_by_role("button", name="click on image places point").click()
            canvas = app.locator(".m1lib-image canvas")
            box = canvas.first.bounding_box()
            for dx in (0.0, 3.0):   # ~0.1 mm apart at this zoom, under a 0.25 mm voxel
                canvas.last.click(position={"x": box["width"] * 0.40 + dx, "y": box["height"] * 0.50})
                page.wait_for_timeout(400)
            page.wait_for_function("() => document.querySelector('.m1lib-explorer').innerText"
                                   ".includes('Point switched automatically')", timeout=30_000)
            app.get_by_role("button", name="Save annotations").click()
            page.wait_for_function("() => document.querySelector('.m1lib-explorer').innerText"
                                   ".includes('shorter than one voxel')", timeout=60_000)
            msg = app.locator(".m1lib-msg", has_text="not saved").bounding_box()
            save = app.get_by_role("button", name="Save annotations").bounding_box()
            record["refusal"] = {"message": msg, "save_button": save}
            # beside the button: in its row (overlapping it vertically), to its right
            assert msg["x"] > save["x"] + save["width"] - 1 and msg["y"] < save["y"] + save["height"], record
            assert msg["x"] + msg["width"] <= fit["panel_right"] + 1, record   # wrapped, not cut off
            annotation = lab["base"] / "replica" / "derivatives" / "annotations" / "sub-ALS01_desc-m1_markups.mrk.json"
            assert annotation.read_bytes() == lab["annotation_bytes"]          # nothing was written
            _shot(page, app.locator(".m1lib-msg", has_text="not saved"), "explorer_1280_save_refused.png")
            # still an image after the refusal (no half-drawn or blank frame), and the kernel
            # raised nothing behind the scenes (widget and canvas messages may arrive on
            # different kernel threads)
            page.wait_for_timeout(1000)
            settled = page.evaluate(_CANVAS_STATS)
            record["after_refusal"] = settled
            assert settled["sd"] > 5 and settled["mean"] < 200 and settled["coloured_bar"] > 0.3, settled
            errors = page.evaluate("""async () => {
              const k = window.jupyterapp.shell.currentWidget.context.sessionContext.session.kernel;
              const f = k.requestExecute({code: "import sys; print(repr(getattr(sys, 'last_value', None)))"});
              const texts = []; f.onIOPub = m => { if (m.content.text) texts.push(m.content.text); };
              await f.done; return texts.join('').trim();
            }""")
            assert errors == "None", errors
            _shot(page, app.locator(".m1lib-scatter"), "explorer_1280_linked.png")
            record["canvas_first"], record["canvas_back"] = first, back
        finally:
            ctx.close()
    record["seconds_in_browser"] = round(time.monotonic() - t0, 1)
    (ARTIFACTS / "explorer_jupyterlab.json").write_text(json.dumps(record, indent=1))
