"""A real browser on a real lab: headless Chromium (Debian's /usr/bin/chromium), driven by
Playwright, opens the URL that `pyrlab up` printed, sees the JupyterLab launcher, opens a
notebook, runs `print(6*7)` and sees 42. Screenshots go to artifacts/ (gitignored).

Playwright's own browser downloads are not used (they cannot be downloaded here): the
browser is the distribution's, started with a fresh profile and no background traffic.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from labtools import EngineCli, engine_unavailable
from pylabcase import UID, RunningLab, cleanup, pylab_case, url_parts

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def lab(bootstrapped_bases: Callable[[str], str], host_ca_files: list[Path],
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    base = bootstrapped_bases("docker")
    binary = shutil.which("docker")
    assert binary is not None
    engine = EngineCli("docker", binary)
    tmp = tmp_path_factory.mktemp("pylab-browser")
    lab, ports = pylab_case(tmp, base, host_ca_files)
    port = ports["lab"]
    try:
        # `pyrlab build`, then `up --no-build` (test_run.py has `up` build by itself).
        build = lab.pyrlab("build", "pylab")
        assert build.returncode == 0, build.stdout + build.stderr
        up = lab.pyrlab("up", "pylab", "--no-build", "--port", str(port), "--json")
        assert up.returncode == 0, up.stdout + up.stderr
        url = json.loads(up.stdout)["url"]
        yield RunningLab(lab, engine, lab.root / "work", ports, url, url_parts(url)[1], 0.0)
    finally:
        down = cleanup(lab, engine)
        assert down.returncode == 0, down.stdout + down.stderr


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """A Chromium context with a fresh user-data-dir, closed afterwards."""
    if not CHROMIUM.is_file():
        engine_unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        engine_unavailable("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 800})
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    return path


def test_a_browser_runs_a_notebook(lab: RunningLab, browser: Any) -> None:
    page = browser.new_page()
    started = time.monotonic()
    try:
        page.goto(lab.url)
        launcher = page.locator(".jp-Launcher")
        launcher.wait_for()
        screenshot(page, "browser-launcher.png")
        # The launcher's notebook card for the Python kernel.
        page.locator('.jp-LauncherCard[data-category="Notebook"]').first.click()
        editor = page.locator(".jp-NotebookPanel .jp-Cell .cm-content").first
        editor.wait_for()
        # Typing before the kernel is connected would be lost: wait for the status bar,
        # then a moment more (JupyterLab 4.6 can drop an execute sent as the kernel connects).
        page.get_by_text("Python 3 (ipykernel) | Idle").wait_for()
        page.wait_for_timeout(1500)
        editor.click()
        page.keyboard.type("print(6*7)")
        page.keyboard.press("Shift+Enter")
        output = page.locator(".jp-NotebookPanel .jp-OutputArea-output").first
        output.wait_for()
        assert output.inner_text().strip() == "42"
        print(f"\nbrowser: launcher → notebook → 42 in {time.monotonic() - started:.1f} s")
    finally:
        shot = screenshot(page, "browser-notebook.png")
    assert shot.stat().st_size > 0
    # The notebook the browser made lives in the host's notebooks folder, as the host user.
    made = list((lab.work / "notebooks").glob("*.ipynb"))
    assert made, "the new notebook is not in the notebooks folder"
    assert all(path.stat().st_uid == UID for path in made)


def test_without_the_token_the_browser_gets_the_login_page(lab: RunningLab,
                                                           browser: Any) -> None:
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{lab.port}/lab")
    page.locator("#password_input").wait_for()  # "Password or token"
    assert "/login" in page.url
    assert page.locator(".jp-Launcher").count() == 0


NEWS_PROMPT = "Would you like to get notified about official Jupyter news?"
NOTIFICATION_SETTINGS = "/lab/api/settings/@jupyterlab/apputils-extension:notification"


def put_user_setting(lab: RunningLab, raw: str) -> None:
    """The lab user's own settings for JupyterLab's notifications (as the settings editor
    would save them)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{lab.port}{NOTIFICATION_SETTINGS}", method="PUT",
        data=json.dumps({"raw": raw}).encode(),
        headers={"Authorization": f"token {lab.token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 204


def test_a_fresh_lab_does_not_ask_about_jupyter_news(lab: RunningLab, browser: Any) -> None:
    """pyrlab's images turn JupyterLab's news prompt off. With JupyterLab's own default
    ("none": ask) saved as the user's setting, the same browser sees the prompt, so this
    check can tell the two apart."""
    page = browser.new_page()
    page.goto(lab.url)
    # The workspace may open on the notebook an earlier test made, not on the launcher.
    page.locator("#jp-main-dock-panel").wait_for()
    page.wait_for_timeout(5000)  # the prompt comes once the app is restored
    screenshot(page, "browser-no-news.png")
    assert page.get_by_text(NEWS_PROMPT).count() == 0
    try:
        put_user_setting(lab, '{"fetchNews": "none"}')
        page.reload()
        page.locator("#jp-main-dock-panel").wait_for()
        page.get_by_text(NEWS_PROMPT).wait_for(timeout=30_000)
        screenshot(page, "browser-news-asked.png")
    finally:
        put_user_setting(lab, "{}")
