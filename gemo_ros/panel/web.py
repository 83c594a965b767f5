"""The web panel: an HTTP server that shows the face full screen in a browser (ROS-free).

Routes:

* ``/`` — the page: the face letterboxed on black (``object-fit: contain``), filling the
  window; a message ``waiting for <topic>...`` covers it while no frame is fresher than
  ``stale_s`` seconds (before the first frame, or when the publisher stops);
* ``/stream.mjpg`` — ``multipart/x-mixed-replace`` MJPEG: each new frame is sent as it
  arrives (the published rate); a slow client gets the latest frame, never a backlog;
* ``/frame.jpg`` — the latest frame once (503 before the first);
* ``/status`` — JSON ``{"frames", "age_s", "fps", "width", "height", "stale_s", "topic"}``.

The server is the standard library's ``ThreadingHTTPServer`` (a thread per connection, a
browser holds two: the stream and the status poll). It binds 127.0.0.1 unless told
otherwise: a kiosk browser on the robot needs nothing more, and the face is not offered
to the network by default.
"""

import html
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

from gemo_ros.panel.frames import FrameHub

BOUNDARY = "gemoframe"
#: How often a stream thread wakes to check for shutdown while no frame comes (s).
_POLL_S = 0.5

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>gemo_ros face</title>
<style>
  html, body {{ margin: 0; height: 100%; background: #000; overflow: hidden; cursor: none; }}
  #face {{ display: block; width: 100vw; height: 100vh; object-fit: contain;
           background: #000; }}
  #wait {{ position: fixed; inset: 0; display: flex; align-items: center;
           justify-content: center; color: #ccc; background: #000;
           font: 4vmin sans-serif; text-align: center; }}
  #wait[hidden] {{ display: none; }}
</style>
</head>
<body>
<img id="face" alt="robot face" src="stream.mjpg">
<div id="wait" role="status">waiting for {topic}...</div>
<script>
  // The stream shows each frame as it arrives; /status says whether frames still come.
  const STALE_S = {stale_s};
  const face = document.getElementById("face");
  const wait = document.getElementById("wait");
  let streamOk = true;
  face.addEventListener("error", () => {{  // server restarted or stream ended: reconnect
    streamOk = false;
    setTimeout(() => {{ face.src = "stream.mjpg?t=" + Date.now(); streamOk = true; }}, 1000);
  }});
  async function poll() {{
    let live = false;
    try {{
      const s = await (await fetch("status", {{cache: "no-store"}})).json();
      live = s.frames > 0 && s.age_s !== null && s.age_s < STALE_S;
    }} catch (e) {{ live = false; }}
    wait.hidden = live && streamOk;
    document.body.dataset.live = live ? "1" : "0";
  }}
  poll();
  setInterval(poll, 500);
</script>
</body>
</html>
"""


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args) -> None:  # quiet: one line per request is noise
        return

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?", 1)[0]
        panel = self.server.panel
        if path in ("/", "/index.html"):
            self._send(200, "text/html; charset=utf-8", panel.page().encode())
        elif path == "/status":
            self._send(200, "application/json", json.dumps(panel.status()).encode())
        elif path == "/frame.jpg":
            frame = panel.hub.latest()
            if frame is None:
                self._send(503, "text/plain", f"no frame yet from {panel.topic}\n".encode())
            else:
                self._send(200, "image/jpeg", frame.jpeg())
        elif path == "/stream.mjpg":
            self._stream()
        else:
            self._send(404, "text/plain", b"not found\n")

    def _send(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _stream(self) -> None:
        hub = self.server.panel.hub
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        seq = 0
        try:
            while not hub.closed and not self.server.stopping.is_set():
                frame = hub.wait_newer(seq, _POLL_S)
                if frame is None:
                    continue
                seq = frame.seq
                jpeg = frame.jpeg()
                self.wfile.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass  # the viewer went away


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, panel: "WebPanel") -> None:
        self.panel = panel
        self.stopping = threading.Event()
        super().__init__(address, _Handler)


class WebPanel:
    """Serve the face page for a :class:`FrameHub` on ``host:port`` (0 = any free port).

    ``topic`` is only named on the page; ``stale_s`` is how old the latest frame may be
    before the page says it is waiting. Raises OSError (e.g. address in use) from
    :meth:`start`.
    """

    def __init__(self, hub: FrameHub, host: str = "127.0.0.1", port: int = 8080,
                 topic: str = "face/image", stale_s: float = 2.0) -> None:
        if not 0 <= int(port) <= 65535:
            raise ValueError(f"port must be in 0..65535, got {port}")
        if not stale_s > 0:
            raise ValueError(f"stale_s must be > 0, got {stale_s}")
        self.hub, self.host, self.port = hub, str(host), int(port)
        self.topic, self.stale_s = str(topic), float(stale_s)
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    def page(self) -> str:
        """Return the HTML page."""
        return _PAGE.format(topic=html.escape(self.topic), stale_s=json.dumps(self.stale_s))

    def status(self) -> dict:
        """Return the hub's status plus ``stale_s`` and ``topic``."""
        return {**self.hub.status(), "stale_s": self.stale_s, "topic": self.topic}

    @property
    def url(self) -> str:
        """The page's address (the bound port once started)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> "WebPanel":
        """Bind and serve in a background thread; return self."""
        server_cls = _Server
        if ":" in self.host:  # an IPv6 address
            server_cls = type("_Server6", (_Server,), {"address_family": socket.AF_INET6})
        self._server = server_cls((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.2},
                                        name="face-panel-http", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop serving: end the streams, close the socket and join the server thread."""
        if self._server is None:
            return
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout)
        self._server = None
