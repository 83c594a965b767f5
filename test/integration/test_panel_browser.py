"""The web panel in a real browser: avatar_node -> DDS -> face_panel -> HTTP -> Chromium.

avatar_node and face_panel run as their own processes on a private domain; Debian's
Chromium, driven by Playwright (``executable_path``: no browser download), opens the page.
Checks: the page loads, the face is visible and letterboxed, the picture changes while the
face talks and blinks, a panel without frames says it is waiting, and Ctrl-C ends
face_panel cleanly.

Set ``GEMO_PANEL_SCREENSHOT=docs/panel_screenshot.png`` to keep the screenshot (that is how
the README's picture is made).
"""

import io
import os
import random
import re
import shutil
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("audio_common_msgs.msg")
playwright_api = pytest.importorskip("playwright.sync_api")

from PIL import Image  # noqa: E402

from ros_helpers.process import stop_process  # noqa: E402
from test.conftest import ROOT  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.ros, pytest.mark.slow, pytest.mark.timeout(600),
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason="Debian's chromium is not installed (apt-get install chromium)"),
]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SIZE = 128
VIEW_W, VIEW_H = 800, 480          # a landscape panel: bars left and right
BACKGROUND = (18, 22, 30)          # config/avatar.yaml's background
PANEL_CODE = "from gemo_ros.panel_node import panel_main; raise SystemExit(panel_main())"


def _start(cmd, env, log_path):
    with open(log_path, "w") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)


def _panel_url(proc, log_path, timeout=60.0) -> str:
    """Return the URL face_panel logs once it serves (it binds a free port: port:=0)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        m = re.search(r"face panel on (http://\S+) showing", log_path.read_text())
        if m:
            return m.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError("face_panel did not start:\n" + log_path.read_text())


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Start avatar_node, a face_panel on its image and one on a silent topic."""
    logs = tmp_path_factory.mktemp("panel")
    domain = random.randint(20, 99)
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), PYTHONUNBUFFERED="1",
               OMP_NUM_THREADS="1", ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    node = _start([sys.executable, "-m", "gemo_ros.node", "--ros-args", "--params-file",
                   str(ROOT / "config" / "avatar.yaml"), "-p", f"width:={SIZE}",
                   "-p", "fps:=10.0", "-p", "device:=cpu", "-p", "threads:=1",
                   "-p", "idle.blink_interval_s:=1.0", "-p", "publish_compressed:=true"],
                  env, logs / "avatar_node.log")
    panel = _start([sys.executable, "-c", PANEL_CODE, "--ros-args", "-p", "port:=0"],
                   env, logs / "face_panel.log")
    silent = _start([sys.executable, "-c", PANEL_CODE, "--ros-args", "-p", "port:=0",
                     "-p", "image_topic:=nobody/image", "-r", "__node:=silent_panel"],
                    env, logs / "silent_panel.log")
    jpegs = _start([sys.executable, "-c", PANEL_CODE, "--ros-args", "-p", "port:=0",
                    "-p", "transport:=compressed", "-r", "__node:=jpeg_panel"],
                   env, logs / "jpeg_panel.log")
    procs = {"node": node, "panel": panel, "silent": silent, "jpegs": jpegs}
    try:
        urls = {"panel": _panel_url(panel, logs / "face_panel.log"),
                "silent": _panel_url(silent, logs / "silent_panel.log"),
                "jpegs": _panel_url(jpegs, logs / "jpeg_panel.log")}
        yield {"env": env, "domain": domain, "logs": logs, "procs": procs, "urls": urls}
    finally:
        for proc in procs.values():
            stop_process(proc)


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def _talk(domain: int, seconds: float) -> None:
    """Speak the bundled demo clip to avatar_node in real-time chunks (so the mouth moves)."""
    import soundfile as sf

    from gemo_ros.commands.face_probe import FaceProbe
    from gemo_ros.ros_io import bytes_from_pcm

    speech, rate = sf.read(str(ROOT / "gemo_ros" / "assets" / "demo_speech.wav"),
                           dtype="float32")
    probe = FaceProbe(domain, name="panel_test_speaker", keep_images=False)
    try:
        probe.send_info(rate)
        chunk = rate // 10
        for i in range(0, min(len(speech), int(seconds * rate)), chunk):
            probe.send_audio(bytes_from_pcm(speech[i:i + chunk]))
            time.sleep(0.1)
    finally:
        probe.close()


def _shot(page) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB")).astype(int)


def _wait_live(page, timeout_s: float = 180.0) -> None:
    page.wait_for_function("document.body.dataset.live === '1'", timeout=timeout_s * 1000)


def test_the_page_shows_the_live_face_letterboxed_and_it_moves(stack, browser) -> None:
    page = browser.new_page(viewport={"width": VIEW_W, "height": VIEW_H})
    try:
        page.goto(stack["urls"]["panel"], wait_until="domcontentloaded")
        assert page.title() == "gemo_ros face"
        _wait_live(page)
        assert not page.is_visible("#wait")
        page.wait_for_function("document.getElementById('face').naturalWidth > 0")
        assert page.evaluate("document.getElementById('face').naturalWidth") == SIZE

        import threading
        speaker = threading.Thread(target=_talk, args=(stack["domain"], 6.0))
        speaker.start()
        time.sleep(2.0)
        first = _shot(page)
        time.sleep(1.5)
        second = _shot(page)
        speaker.join(60.0)
    finally:
        page.close()

    # the face is the centred square VIEW_H x VIEW_H; black bars fill the rest
    x0 = (VIEW_W - VIEW_H) // 2
    bars = np.concatenate([second[:, : x0 - 2], second[:, x0 + VIEW_H + 2:]], axis=1)
    assert bars.max() <= 8, "the letterbox bars are not black"
    corner = second[4:20, x0 + 4: x0 + 20]  # the image's own background, not a bar
    assert np.abs(corner - np.array(BACKGROUND)).max() <= 12
    centre = second[VIEW_H // 4: 3 * VIEW_H // 4, x0 + VIEW_H // 4: x0 + 3 * VIEW_H // 4]
    not_bg = np.abs(centre - np.array(BACKGROUND)).max(axis=2) > 40
    assert not_bg.mean() > 0.2, "no face in the centre of the page"
    changed = np.abs(first - second).max(axis=2) > 30
    assert changed[:, x0: x0 + VIEW_H].mean() > 0.002, "the picture did not change"
    assert changed[:, : x0 - 2].sum() == 0  # only the face moves

    keep = os.environ.get("GEMO_PANEL_SCREENSHOT")
    if keep:
        Image.fromarray(second.astype(np.uint8)).save(ROOT / keep)


def test_a_panel_without_frames_says_it_is_waiting(stack, browser) -> None:
    page = browser.new_page(viewport={"width": VIEW_W, "height": VIEW_H})
    try:
        page.goto(stack["urls"]["silent"], wait_until="domcontentloaded")
        page.wait_for_function("document.body.dataset.live === '0'", timeout=20000)
        assert page.is_visible("#wait")
        assert page.inner_text("#wait") == "waiting for /nobody/image..."
    finally:
        page.close()


def test_the_snapshot_and_status_follow_the_node(stack) -> None:
    import json

    url = stack["urls"]["panel"]
    with urllib.request.urlopen(url + "status", timeout=10) as r:
        status = json.load(r)
    assert status["frames"] > 0 and status["topic"] == "/face/image"
    with urllib.request.urlopen(url + "frame.jpg", timeout=10) as r:
        assert Image.open(io.BytesIO(r.read())).size == (SIZE, SIZE)


def test_a_panel_on_the_compressed_topic_serves_the_node_s_jpegs(stack) -> None:
    import json

    url = stack["urls"]["jpegs"]
    end = time.monotonic() + 60.0
    status = {}
    while time.monotonic() < end:
        with urllib.request.urlopen(url + "status", timeout=10) as r:
            status = json.load(r)
        if status["frames"] > 0:
            break
        time.sleep(0.2)
    assert status["topic"] == "/face/image/compressed" and status["frames"] > 0
    with urllib.request.urlopen(url + "frame.jpg", timeout=10) as r:
        assert Image.open(io.BytesIO(r.read())).size == (SIZE, SIZE)


def test_ctrl_c_ends_face_panel_cleanly(stack) -> None:
    proc = stack["procs"]["silent"]
    url = stack["urls"]["silent"]
    assert stop_process(proc) == 0, (stack["logs"] / "silent_panel.log").read_text()
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "status", timeout=5)
    assert "Traceback" not in (stack["logs"] / "silent_panel.log").read_text()
