"""The Streamlit dashboard: its views (pure functions of SDK JSON), the app
logic through Streamlit's AppTest, and a real headless Chromium (``browser``)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from vidsense.app import dashboard_views as views

APP = str(Path(__file__).resolve().parents[1] / "app" / "dashboard.py")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
# A cheap configuration: one visual model; the LLM is exercised by the browser test.
CHEAP = {"VIDSENSE_PERCEPTION": '["visual-tags"]'}


def test_parse_labels_accepts_lines_and_commas():
    assert views.parse_labels("biking, cooking\n\n swimming \n") == ["biking", "cooking", "swimming"]
    assert views.parse_labels("  \n , ") == []


def test_upload_problem_names_file_and_limit():
    allowed = [".mp4", ".avi"]
    assert views.upload_problem("clip.MP4", 1000, 1, allowed) is None
    msg = views.upload_problem("notes.txt", 10, 1, allowed)
    assert msg.startswith("notes.txt: not a video file")
    msg = views.upload_problem("big.mp4", 3 * 1024 * 1024, 2, allowed)
    assert "big.mp4" in msg and "over the upload limit of 2 MB" in msg


def _app(monkeypatch, **env):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    for k, v in {**CHEAP, **env}.items():
        monkeypatch.setenv(k, v)
    # The Pipeline is cached per process; each test gets one built from its own environment.
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=900)
    at.run()
    assert not at.exception, at.exception
    return at


def _errors(at) -> str:
    return " | ".join(e.value for e in at.error)


@pytest.mark.slow
def test_bad_inputs_show_a_message_and_the_app_keeps_working(monkeypatch, tmp_path):
    at = _app(monkeypatch, VIDSENSE_MAX_UPLOAD_MB="1")
    assert "press Explain" in at.info[0].value

    # An empty pasted label list.
    at.selectbox(key="labelset").set_value("custom (paste labels)").run()
    at.text_area(key="custom_labels").set_value(" , \n").run()
    at.button(key="run").click().run()
    assert "label list is empty" in _errors(at)

    # Uploads: over the limit, then a text file renamed .mp4 (fails mid-run).
    at.text_area(key="custom_labels").set_value("biking, cooking, swimming").run()
    at.radio(key="source").set_value("Upload").run()
    at.file_uploader(key="upload").set_value(("big.mp4", b"\0" * (1024 * 1024 + 10), "video/mp4")).run()
    assert "over the upload limit of 1 MB" in _errors(at)
    at.file_uploader(key="upload").set_value(("notes.mp4", b"this is not a video\n", "video/mp4")).run()
    at.radio(key="reasoner").set_value("embedding").run()
    at.button(key="run").click().run()
    assert "not a readable video" in _errors(at), _errors(at)
    assert not at.exception

    # The app still works: back to the folder and a real clip.
    at.radio(key="source").set_value("From a folder").run()
    at.checkbox(key="occlusion").set_value(False).run()
    at.button(key="run").click().run()
    assert not at.exception, at.exception
    assert not at.error, _errors(at)
    assert at.subheader[0].value.startswith("Prediction: ")


@pytest.mark.slow
def test_explanation_views_and_interventions(monkeypatch):
    at = _app(monkeypatch)
    at.selectbox(key="labelset").set_value("custom (paste labels)").run()
    at.text_area(key="custom_labels").set_value("riding a bike\ncooking\nswimming\nplaying guitar").run()
    at.radio(key="reasoner").set_value("embedding").run()
    at.button(key="run").click().run()
    assert not at.exception, at.exception
    assert not at.error, _errors(at)
    head = at.subheader[0].value
    assert head.startswith("Prediction: ") and head.split(": ", 1)[1].rsplit("  (", 1)[0] in {"riding a bike", "cooking", "swimming", "playing guitar"}
    charts = [c for c in at.get("plotly_chart")]
    # probability, timeline, global, local, attention, two occlusion charts
    assert len(charts) >= 7

    # Moving the time cursor keeps the results (cached) and updates the window text.
    at.select_slider(key="cursor").set_value(2).run()
    assert not at.exception and at.subheader[0].value.startswith("Prediction: ")

    # Dropping the only modality leaves nothing observed: the reasoner's answer is flagged.
    at.multiselect(key="drop_modalities").set_value(["sight"]).run()
    at.button(key="reclassify").click().run()
    assert not at.exception, at.exception
    assert any("Without modality sight" in m.value for m in at.markdown)

    # Removing a concept in the concept model records the label and probability before / after.
    at.multiselect(key="concepts").set_value([0]).run()
    at.button(key="intervene").click().run()
    assert not at.exception, at.exception
    tables = [d.value for d in at.dataframe]
    asked = [t for t in tables if "action" in t.columns and len(t) == 1]
    assert asked and asked[0]["action"][0] == "remove_concept"
    assert {"label_before", "label_after", "probability_before", "probability_after"} <= set(asked[0].columns)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(port: int, proc: subprocess.Popen, seconds: float = 120.0) -> None:
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError("streamlit did not become healthy")


@pytest.mark.slow
@pytest.mark.browser
def test_browser_shows_an_explained_prediction_for_a_real_clip(tmp_path):
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.skip("Debian chromium / chromium-driver not installed (make system-deps, or apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install -e '.[dev]')")
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from vidsense.agents.labels import load_labels
    from vidsense.app import dashboard_cmd

    port = _free_port()
    cmd, env = dashboard_cmd.command(port=port, max_upload_mb=200)
    # The real LLM and a real clip; perception trimmed to the fast visual models to keep the test in minutes.
    env["VIDSENSE_PERCEPTION"] = '["visual-tags", "pose", "action"]'
    log = open(tmp_path / "streamlit.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    drv = None
    try:
        _wait_healthy(port, proc)
        opts = webdriver.ChromeOptions()
        opts.binary_location = chromium
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--window-size=1500,2600"):
            opts.add_argument(flag)
        drv = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path), options=opts)
        drv.get(f"http://127.0.0.1:{port}/?video=bikes.mp4&labels=ucf101&reasoner=llm&occlusion=0")
        def click_explain(d) -> bool:
            # Streamlit re-renders while it loads: find and click in one step, retried until it holds.
            button = next((b for b in d.find_elements(By.TAG_NAME, "button") if b.text.strip() == "Explain"), None)
            if button is None or "press Explain" not in d.find_element(By.TAG_NAME, "body").text:
                return False
            button.click()
            return True

        WebDriverWait(drv, 120, ignored_exceptions=(StaleElementReferenceException,)).until(click_explain)
        WebDriverWait(drv, 840, poll_frequency=2, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda d: "Prediction:" in d.find_element(By.TAG_NAME, "body").text or d.find_elements(By.CSS_SELECTOR, "[data-testid='stAlertContentError']")
        )
        errors = [e.text for e in drv.find_elements(By.CSS_SELECTOR, "[data-testid='stAlertContentError']")]
        assert not errors, errors
        WebDriverWait(drv, 120, ignored_exceptions=(StaleElementReferenceException,)).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .main-svg")) >= 4)
        time.sleep(2)  # let plotly finish drawing before the screenshot
        ARTIFACTS.mkdir(exist_ok=True)
        drv.save_screenshot(str(ARTIFACTS / "dashboard.png"))
        body = drv.find_element(By.TAG_NAME, "body").text
        label = body.split("Prediction: ", 1)[1].split("(", 1)[0].strip()
        assert label in load_labels("ucf101").labels
        for heading in ("Timeline per modality", "concept importance", "When: concept contribution per window"):
            assert heading in body or drv.find_elements(By.XPATH, f"//*[contains(text(), '{heading}')]"), heading
        assert drv.find_elements(By.TAG_NAME, "video")
    finally:
        if drv is not None:
            drv.quit()
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
