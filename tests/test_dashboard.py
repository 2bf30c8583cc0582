"""The Streamlit dashboard: its views (pure functions of SDK JSON), the app
logic through Streamlit's AppTest, and a real headless Chromium (``browser``)."""

from __future__ import annotations

import gc
import shutil
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

import vidsense
from vidsense.app import dashboard_views as views
from vidsense.app.dashboard_cmd import FOLDER_ENV, ROOT_ENV
from vidsense.app.roots import UploadFolder, inside_root, list_videos, upload_problem

APP = str(Path(__file__).resolve().parents[1] / "app" / "dashboard.py")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
EXAMPLES = vidsense.example_video().parent
# A cheap configuration: one visual model; the LLM is exercised by the browser test.
# The root is the examples' folder, wherever the tests run from.
CHEAP = {"VIDSENSE_PERCEPTION": '["visual-tags"]', ROOT_ENV: str(EXAMPLES)}


def test_parse_labels_accepts_lines_and_commas():
    assert views.parse_labels("biking, cooking\n\n swimming \n") == ["biking", "cooking", "swimming"]
    assert views.parse_labels("  \n , ") == []


def test_upload_problem_names_file_and_limit():
    allowed = [".mp4", ".avi"]
    assert upload_problem("clip.MP4", 1000, 1, allowed) is None
    msg = upload_problem("notes.txt", 10, 1, allowed)
    assert msg.startswith("notes.txt: not a video file")
    msg = upload_problem("big.mp4", 3 * 1024 * 1024, 2, allowed)
    assert "big.mp4" in msg and "over the upload limit of 2 MB" in msg


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    """A root with a video, a nested folder, and symlinks pointing out of it; and a folder outside."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "clips").mkdir(parents=True)
    outside.mkdir()
    (root / "clips" / "a.mp4").write_bytes(b"video a")
    (root / "b.mp4").write_bytes(b"video b")
    (outside / "secret.mp4").write_bytes(b"not yours")
    (root / "out").symlink_to(outside, target_is_directory=True)
    (root / "clips" / "leak.mp4").symlink_to(outside / "secret.mp4")
    (root / "clips" / "alias.mp4").symlink_to(root / "b.mp4")
    return root, outside


def test_inside_root_accepts_the_root_and_below_and_refuses_the_rest(tmp_path):
    root, outside = _tree(tmp_path)
    assert inside_root(root, root) == root.resolve()
    assert inside_root("", root) == root.resolve()
    assert inside_root("clips", root) == (root / "clips").resolve()  # relative: from the root
    assert inside_root(root / "clips" / ".." / "clips", root) == (root / "clips").resolve()
    assert inside_root(root / "clips" / "alias.mp4", root) == (root / "b.mp4").resolve()
    for bad in ("/etc", "/", "..", "clips/../../outside", root / "out", root / "out" / "secret.mp4", root / "clips" / "leak.mp4", outside):
        with pytest.raises(vidsense.InputError, match=r"outside the allowed folder .* \(vidsense dashboard --root\)") as err:
            inside_root(bad, root)
        assert "\n" not in str(err.value)
    # A sibling whose name starts like the root's is outside too.
    (tmp_path / "root2").mkdir()
    with pytest.raises(vidsense.InputError):
        inside_root(tmp_path / "root2", root)


def test_list_videos_lists_only_files_inside_the_root(tmp_path):
    root, _ = _tree(tmp_path)
    base, videos = list_videos("clips", root)
    assert base == (root / "clips").resolve()
    assert sorted(v.name for v in videos) == ["a.mp4", "alias.mp4"]  # a symlink within: listed; the one out: not
    with pytest.raises(vidsense.InputError, match="outside"):
        list_videos(root / "out", root)
    with pytest.raises(vidsense.InputError, match="outside"):
        list_videos("/etc", root)


def test_an_upload_is_held_privately_only_while_it_is_used(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    uploads = UploadFolder()
    folder = uploads.path
    assert folder.parent == tmp_path and stat.S_IMODE(folder.stat().st_mode) == 0o700
    with uploads.holding("My Clip.MP4", b"some bytes") as path:
        assert path.parent == folder and path.suffix == ".mp4" and path.read_bytes() == b"some bytes"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path == uploads.path_for("My Clip.MP4", b"some bytes")  # same bytes, same name: same cache key
    assert not path.exists() and folder.is_dir()
    with pytest.raises(RuntimeError), uploads.holding("x.mp4", b"more") as path:
        raise RuntimeError("the model failed")
    assert not path.exists()
    # The session ends (its state is dropped): the folder goes with it.
    del uploads
    gc.collect()
    assert not folder.exists()


def test_a_folder_outside_the_root_is_refused_in_the_page(monkeypatch, tmp_path):
    root, _ = _tree(tmp_path)
    at = _app(monkeypatch, **{ROOT_ENV: str(root), FOLDER_ENV: str(root / "clips")})
    assert at.selectbox(key="video").options == ["a.mp4", "alias.mp4"]
    for bad in ("/etc", str(root / "out"), "../outside"):
        at.text_input(key="folder").set_value(bad).run()
        assert not at.exception, at.exception
        errors = [e.value for e in at.sidebar.error]
        assert len(errors) == 1 and "outside the allowed folder" in errors[0] and "\n" not in errors[0], errors
        assert not [s for s in at.sidebar.selectbox if s.key == "video"]  # nothing listed
    at.text_input(key="folder").set_value("clips").run()
    assert not at.sidebar.error and at.selectbox(key="video").options == ["a.mp4", "alias.mp4"]


@pytest.mark.slow
def test_an_upload_is_explained_from_a_private_folder_and_deleted(monkeypatch, tmp_path, example_video):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    seen = []
    real = vidsense.Pipeline.explain

    def spy(self, video, *args, **kwargs):
        path = Path(video)
        seen.append((path, stat.S_IMODE(path.stat().st_mode), stat.S_IMODE(path.parent.stat().st_mode)))
        return real(self, video, *args, **kwargs)

    monkeypatch.setattr(vidsense.Pipeline, "explain", spy)
    at = _app(monkeypatch)
    at.radio(key="source").set_value("Upload").run()
    at.file_uploader(key="upload").set_value(("my ride.mp4", example_video.read_bytes(), "video/mp4")).run()
    at.selectbox(key="labelset").set_value("custom (paste labels)").run()
    at.text_area(key="custom_labels").set_value("riding a bike\ncooking\nswimming").run()
    at.radio(key="reasoner").set_value("embedding").run()
    at.checkbox(key="occlusion").set_value(False).run()
    at.button(key="run").click().run()
    assert not at.exception, at.exception
    assert not at.error, _errors(at)
    assert at.subheader[0].value.startswith("Prediction: ")
    assert len(seen) == 1
    path, file_mode, folder_mode = seen[0]
    assert path.parent.parent == tmp_path and path.parent.name.startswith("vidsense-upload-")
    assert (file_mode, folder_mode) == (0o600, 0o700)
    assert not path.exists() and list(path.parent.iterdir()) == []  # deleted once explained
    # The page keeps working on the explained upload (the player gets the bytes, not the file).
    at.multiselect(key="concepts").set_value([0]).run()
    at.button(key="intervene").click().run()
    assert not at.exception and not at.error, _errors(at)
    assert not path.exists()


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


def test_the_default_route_is_explained_and_intervened_on_by_the_model_that_answered(monkeypatch):
    """Default route (cascade = fused): the Answer model tab, no concept-bank tabs, and an intervention
    that removes the concept behind the answer re-ranks the real answer (no perception again)."""
    at = _app(monkeypatch)
    at.selectbox(key="labelset").set_value("ucf101").run()
    at.button(key="run").click().run()
    assert not at.exception, at.exception
    assert not at.error, _errors(at)
    answer = at.subheader[0].value.split(": ", 1)[1].rsplit("  (", 1)[0]
    assert any("Explained by the model that answered" in c.value for c in at.caption)
    keys = {c.proto.id for c in at.get("plotly_chart")}
    assert any("chart_answer_concepts" in k for k in keys) and not any("chart_global" in k for k in keys)
    picked = at.multiselect(key="answer_remove")
    assert len(picked.options) <= 10  # one visual model: every concept is listed, so column 0 is among them
    picked.set_value([0]).run()
    at.button(key="answer_intervene").click().run()
    assert not at.exception, at.exception
    said = [m.value for m in at.markdown if m.value.startswith("remove_concept")]
    assert said and f"p({answer})" in said[0]


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
    cmd, env = dashboard_cmd.command(port=port, max_upload_mb=200, root=EXAMPLES)
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


def test_the_sdk_stages_move_the_status_box_of_an_explanation(monkeypatch):
    seen = []

    def staged(self, video, labels, *, progress=None, **kwargs):
        for stage, fraction in (("perceiving", 0.3), ("reasoning", 0.8), ("explaining", 0.9)):
            progress(stage, fraction)
            seen.append(stage)
        raise vidsense.InputError("stopped after the stages")

    monkeypatch.setattr(vidsense.Pipeline, "explain", staged)
    at = _app(monkeypatch)
    at.button(key="run").click().run()
    assert not at.exception, at.exception
    assert seen == ["perceiving", "reasoning", "explaining"]
    assert _errors(at) == "stopped after the stages"
    bars = [e.proto for e in at.get("progress")]
    assert [(b.value, b.text) for b in bars] == [(90, "Explaining...")]


def test_the_page_starts_on_the_clis_defaults_and_says_what_costly_options_cost(monkeypatch, tmp_path):
    from vidsense.app import dashboard_cmd

    root, _ = _tree(tmp_path)
    at = _app(monkeypatch, **{ROOT_ENV: str(root)})
    assert not at.exception, at.exception
    reasoner = at.radio(key="reasoner")
    assert reasoner.value == vidsense.load_settings().reasoner == "cascade"
    assert not at.checkbox(key="occlusion").value and "minutes on a CPU" in at.checkbox(key="occlusion").label
    # The slow route says so before it runs.
    assert "10-40 s a clip" in dict(zip(reasoner.options, reasoner.captions))["llm"]
    cmd, _ = dashboard_cmd.command(port=8599, max_upload_mb=10, root=root)
    assert "--client.toolbarMode=viewer" in cmd
