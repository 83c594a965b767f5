"""Specifications of the web panel's HTTP server (gemo_ros/panel/web.py), over loopback."""

import http.client
import io
import json
import socket
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from gemo_ros.panel.frames import FrameHub
from gemo_ros.panel.web import BOUNDARY, WebPanel


@pytest.fixture()
def panel():
    hub = FrameHub()
    p = WebPanel(hub, port=0, topic="/robot/face/image", stale_s=2.0).start()
    yield p
    p.stop()
    hub.close()


def _get(panel: WebPanel, path: str):
    return urllib.request.urlopen(panel.url.rstrip("/") + path, timeout=10)


def _frame(value: int) -> np.ndarray:
    rgb = np.zeros((24, 32, 3), np.uint8)
    rgb[:, :, 0] = value
    return rgb


def test_binds_the_loopback_address_by_default() -> None:
    p = WebPanel(FrameHub(), port=0)
    assert p.host == "127.0.0.1"
    p.start()
    try:
        assert p.port > 0 and p.url == f"http://127.0.0.1:{p.port}/"
    finally:
        p.stop()


def test_the_page_shows_the_stream_letterboxed_and_names_the_topic(panel) -> None:
    with _get(panel, "/") as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
        page = r.read().decode()
    assert 'src="stream.mjpg"' in page and "object-fit: contain" in page
    assert "waiting for /robot/face/image..." in page
    assert "const STALE_S = 2.0;" in page


def test_status_before_the_first_frame_says_none_arrived(panel) -> None:
    with _get(panel, "/status") as r:
        status = json.load(r)
    assert status["frames"] == 0 and status["age_s"] is None
    assert status["topic"] == "/robot/face/image" and status["stale_s"] == 2.0


def test_the_snapshot_is_503_before_the_first_frame_then_the_latest_jpeg(panel) -> None:
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(panel, "/frame.jpg")
    assert err.value.code == 503
    panel.hub.put_rgb(_frame(200))
    with _get(panel, "/frame.jpg") as r:
        img = np.asarray(Image.open(io.BytesIO(r.read())))
    assert img.shape == (24, 32, 3) and abs(int(img[..., 0].mean()) - 200) < 4


def test_unknown_paths_are_404(panel) -> None:
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(panel, "/nope")
    assert err.value.code == 404


def _read_part(resp) -> bytes:
    """Read one multipart part (boundary line, headers, JPEG body) from the stream."""
    line = resp.fp.readline()
    while line in (b"\r\n", b""):
        line = resp.fp.readline()
    assert line.strip() == b"--" + BOUNDARY.encode()
    headers = {}
    while True:
        line = resp.fp.readline().strip()
        if not line:
            break
        k, v = line.decode().split(":", 1)
        headers[k.lower()] = v.strip()
    assert headers["content-type"] == "image/jpeg"
    return resp.fp.read(int(headers["content-length"]))


def test_the_stream_sends_each_new_frame_as_a_jpeg_part(panel) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", panel.port, timeout=10)
    conn.request("GET", "/stream.mjpg")
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.headers["Content-Type"] == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
    means = []
    for value in (40, 220):
        panel.hub.put_rgb(_frame(value))
        img = np.asarray(Image.open(io.BytesIO(_read_part(resp))))
        means.append(int(img[..., 0].mean()))
    conn.close()
    assert abs(means[0] - 40) < 4 and abs(means[1] - 220) < 4


def test_jpeg_frames_are_streamed_byte_for_byte(panel) -> None:
    out = io.BytesIO()
    Image.fromarray(_frame(99)).save(out, format="JPEG", quality=70)
    conn = http.client.HTTPConnection("127.0.0.1", panel.port, timeout=10)
    conn.request("GET", "/stream.mjpg")
    resp = conn.getresponse()
    panel.hub.put_jpeg(out.getvalue())
    assert _read_part(resp) == out.getvalue()
    conn.close()


def test_stop_ends_open_streams_and_frees_the_port() -> None:
    hub = FrameHub()
    p = WebPanel(hub, port=0).start()
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10)
    conn.request("GET", "/stream.mjpg")
    resp = conn.getresponse()
    port = p.port
    p.stop()
    assert resp.read() == b""  # the server closed the stream
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))  # free again


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="port"):
        WebPanel(FrameHub(), port=70000)
    with pytest.raises(ValueError, match="stale_s"):
        WebPanel(FrameHub(), stale_s=0)
