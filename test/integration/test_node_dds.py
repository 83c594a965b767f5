"""Integration specifications of avatar_node over real DDS (separate processes).

The node runs as its own process (the ``avatar_node`` console script) on a private
ROS_DOMAIN_ID; this test process publishes and listens with rclpy.
"""

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("audio_common_msgs.msg")

from audio_common_msgs.msg import AudioData, AudioDataStamped, AudioInfo  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from gemo_ros import ros_io  # noqa: E402
from ros_helpers.listener import Listener  # noqa: E402
from ros_helpers.process import stop_process  # noqa: E402
from test.conftest import ROOT  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(300)]

FPS = 20.0
SIZE = 64
RATE = 16000


def speech_clip(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Return a voiced, vowel-like signal (glottal pulses through two formants), [-1, 1]."""
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 120.0 * (1.0 + 0.05 * np.sin(2 * np.pi * 3.0 * t))
    phase = np.cumsum(2 * np.pi * f0 / RATE)
    src = np.sign(np.sin(phase)) * 0.5 + 0.02 * rng.standard_normal(t.size)
    out = np.zeros_like(src)
    for freq, bw in ((750.0, 90.0), (1200.0, 110.0)):  # an open /a/
        r = np.exp(-np.pi * bw / RATE)
        a1, a2 = -2 * r * np.cos(2 * np.pi * freq / RATE), r * r
        y = np.zeros_like(src)
        for i in range(2, src.size):
            y[i] = src[i] - a1 * y[i - 1] - a2 * y[i - 2]
        out += y
    return (0.6 * out / np.abs(out).max()).astype(np.float32)


def demo_speech() -> np.ndarray:
    """Return the bundled demo speech clip (16 kHz mono) when present, else None."""
    from importlib import resources

    import soundfile as sf
    try:
        with resources.as_file(resources.files("gemo_ros") / "assets" / "demo_speech.wav") as p:
            x, rate = sf.read(str(p), dtype="float32")
    except (FileNotFoundError, OSError):
        return None
    return x if rate == RATE else None


@pytest.fixture(scope="module")
def domain():
    return random.randint(20, 99)


@pytest.fixture(scope="module")
def node_process(domain, tmp_path_factory):
    """Start avatar_node in its own process; yield (process, log path)."""
    log = tmp_path_factory.mktemp("node") / "avatar_node.log"
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), PYTHONUNBUFFERED="1",
               OMP_NUM_THREADS="1", ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    config = str(ROOT / "config" / "avatar.yaml")
    cmd = [sys.executable, "-m", "gemo_ros.node", "--ros-args", "--params-file", config,
           "-p", f"width:={SIZE}", "-p", f"height:={SIZE}", "-p", f"fps:={FPS}",
           "-p", "frame_id:=test_face", "-p", "audio.output_latency_s:=0.3",
           "-p", "device:=cpu", "-p", "threads:=1", "-p", "publish_compressed:=true"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    yield proc, log
    stop_process(proc)


@pytest.fixture(scope="module")
def listener(domain, node_process):
    lis = Listener(domain)
    try:
        lis.wait_for(lambda: len(lis.images) >= 3, 120.0, "the first frames")
    except AssertionError:
        print(node_process[1].read_text())
        raise
    yield lis
    lis.close()


def test_frames_arrive_with_size_encoding_frame_id_and_increasing_stamps(listener):
    listener.frames_keep_coming(20)
    with listener.lock:
        msgs = [m for _, m in listener.images[-20:]]
    stamps = [ros_io.stamp_to_s(m.header.stamp) for m in msgs]
    assert all(m.width == SIZE and m.height == SIZE for m in msgs)
    assert all(m.encoding == "rgb8" and m.step == 3 * SIZE for m in msgs)
    assert all(m.header.frame_id == "test_face" for m in msgs)
    assert all(len(m.data) == SIZE * SIZE * 3 for m in msgs)
    assert all(b > a for a, b in zip(stamps, stamps[1:]))


def test_compressed_frames_are_jpegs_of_the_same_size(listener):
    import io

    from PIL import Image as PILImage

    msg = listener.wait_for(lambda: listener.jpegs and listener.jpegs[-1], 30.0, "a JPEG")
    assert "jpeg" in msg.format and msg.header.frame_id == "test_face"
    assert PILImage.open(io.BytesIO(bytes(msg.data))).size == (SIZE, SIZE)


def test_state_reports_emotion_intensity_speaking_fps_and_latency_keys(listener):
    state = listener.wait_for(lambda: listener.states and listener.states[-1], 30.0, "state")
    for key in ("emotion", "intensity", "speaking", "fps", "latency_s", "mouth_open", "t"):
        assert key in state


def offline_mouth(clip: np.ndarray):
    """Return u -> jawOpen of the same audio model the node loads, run offline on the clip.

    The node uses the shipped a2e model when it loads (else the loudness jaw); whatever the
    model's own timing (co-articulation opens the jaw before a vowel), the node must show at
    playback time t the model's output for the audio heard at t.
    """
    from gemo_ros.face.arkit import ARKIT_INDEX

    try:
        from gemo_ros.audio import StreamingA2E, load_a2e

        stream = StreamingA2E(load_a2e("default"), 0.12)  # audio.lookahead_s default
    except (ImportError, FileNotFoundError, ValueError):
        from gemo_ros.fallback import LoudnessStream

        stream = LoudnessStream()
    stream.push(clip, RATE)
    jaw = ARKIT_INDEX["jawOpen"]
    grid = np.arange(0.0, clip.size / RATE + 0.5, 0.005)
    if hasattr(stream, "coefficients_at"):  # one batched decode
        values = stream.coefficients_at(grid, 0, 0.0)[:, jaw]
    else:
        values = np.array([stream.coefficients(u, 0, 0.0)[jaw] for u in grid])
    return lambda u: float(np.interp(u, grid, values))


def test_speech_onset_and_offset_show_up_in_the_mouth_within_a_frame(listener):
    speech = demo_speech()
    if speech is not None:
        # "hello" and the pause after it (gemo_ros/assets/demo_speech.phones.csv)
        speech = speech[int(0.45 * RATE): int(1.05 * RATE)]
    else:
        speech = speech_clip(0.6, np.random.default_rng(0))
    silence = np.zeros(int(0.6 * RATE), np.float32)
    clip = np.concatenate([silence, speech, silence])
    expected = offline_mouth(clip)
    listener.wait_subscribers(listener.emotion)
    listener.emotion.publish(String(data="neutral 0 0"))
    start = listener.now() + 1.0  # stamped: plays from here, whatever the arrival time
    msg = AudioDataStamped()
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(start), int(round((start % 1) * 1e9))
    msg.audio.data = ros_io._byte_array(ros_io.bytes_from_pcm(clip, "S16LE"))
    listener.wait_subscribers(listener.audio_stamped)
    listener.audio_stamped.publish(msg)
    end = start + clip.size / RATE
    listener.wait_for(lambda: listener.states and listener.states[-1]["t"] > end + 0.3,
                      60.0, "the clip to finish playing")
    with listener.lock:
        shown = sorted((s["t"] - start, s["mouth_open"]) for s in listener.states
                       if start - 0.3 < s["t"] < end + 0.3)
    frame = 1.0 / FPS
    grid = np.linspace(-frame, frame, 11)
    curve = np.array([expected(u) for u in np.arange(0.0, clip.size / RATE, 0.01)])
    thr = 0.3 * curve.max()
    onset_u = 0.01 * int(np.argmax(curve >= thr))
    offset_u = 0.01 * (len(curve) - 1 - int(np.argmax(curve[::-1] >= thr)))
    trace = "; ".join(f"{u:+.3f}:{m:.2f}/{expected(u):.2f}" for u, m in shown)
    assert curve.max() > 0.05 and max(m for _, m in shown) > 0.05, "no mouth opening: " + trace
    assert any(onset_u < u < offset_u for u, _ in shown), "no frame during speech: " + trace
    for u, m in shown:
        # the node shows the model's output for the audio heard at u, give or take a frame
        best = min(abs(m - expected(u + d)) for d in grid)
        assert best < 0.03, f"frame at u={u:+.3f} shows {m:.2f}, audio says " \
                            f"{expected(u):.2f} (onset {onset_u:.2f}, offset {offset_u:.2f}): " \
                            + trace
        if u < onset_u - frame or u > offset_u + frame:
            assert m < thr, f"mouth open outside the speech at u={u:+.3f}: " + trace


def test_paced_audio_chunks_animate_the_mouth_and_report_latency(listener):
    rng = np.random.default_rng(1)
    clip = speech_clip(1.0, rng)
    listener.wait_subscribers(listener.audio)
    t_start = listener.now()
    chunk = int(0.04 * RATE)
    for k in range(0, clip.size, chunk):
        listener.audio.publish(AudioData(data=ros_io._byte_array(
            ros_io.bytes_from_pcm(clip[k:k + chunk], "S16LE"))))
        time.sleep(0.04)
    listener.wait_for(lambda: listener.states[-1]["t"] > t_start + 1.6, 30.0, "playback")
    with listener.lock:
        talking = [s for s in listener.states if s["t"] > t_start and s["speaking"]]
    assert talking, "paced audio never made the face speak"
    assert max(s["mouth_open"] for s in talking) > 0.05
    latencies = [s["latency_s"] for s in talking if s["latency_s"] is not None]
    assert latencies and min(latencies) > 0.0


def test_emotion_command_changes_the_state_and_ramps(listener):
    listener.wait_subscribers(listener.emotion)
    listener.emotion.publish(String(data='{"emotion": "happy", "intensity": 0.8, '
                                         '"transition": 1.0}'))
    t_cmd = listener.now()
    listener.wait_for(lambda: listener.states[-1]["t"] > t_cmd + 1.5, 30.0, "the ramp")
    with listener.lock:
        ramp = [s for s in listener.states if s["t"] > t_cmd - 0.2
                and s["target_emotion"] == "happy"]
    values = [s["intensity"] for s in ramp]
    assert ramp and ramp[-1]["emotion"] == "happy" and values[-1] == pytest.approx(0.8)
    assert any(0.05 < v < 0.75 for v in values), f"no intermediate intensity in {values}"
    assert all(b >= a - 1e-6 for a, b in zip(values, values[1:]))
    listener.emotion.publish(String(data="sad:3 0"))
    listener.wait_for(lambda: listener.states[-1]["emotion"] == "sad"
                      and listener.states[-1]["intensity"] == 1.0, 30.0, "sad at level 3")


def test_background_changes_at_run_time_and_bad_values_are_refused(listener):
    assert listener.set_parameter("background", [250, 10, 10])
    listener.wait_for(lambda: listener.images[-1][1].data[0] == 250, 30.0, "new background")
    assert not listener.set_parameter("background", [300, 0, 0])
    assert listener.set_parameter("camera.yaw_deg", 20.0)
    assert not listener.set_parameter("camera.yaw_deg", 500.0)  # outside its declared range


def test_bad_input_never_stops_the_frames(listener, node_process):
    listener.wait_subscribers(listener.audio)
    # a long utterance is queued first: it must survive everything below
    long_msg = AudioData(data=ros_io._byte_array(
        ros_io.bytes_from_pcm(speech_clip(4.0, np.random.default_rng(2)), "S16LE")))
    listener.audio.publish(long_msg)
    time.sleep(0.2)
    listener.audio.publish(AudioData(data=ros_io._byte_array(b"\x01\x02\x03")))   # odd bytes
    listener.audio.publish(AudioData(data=ros_io._byte_array(b"")))               # empty
    listener.emotion.publish(String(data="ecstatic 0.5"))                        # unknown
    listener.emotion.publish(String(data="happy 7"))                             # clamped
    listener.emotion.publish(String(data='{"emotion": "happy",'))                # bad JSON
    time.sleep(0.5)  # let these arrive before the burst overwrites the publisher's history
    for k in range(1000):                                                        # burst
        listener.emotion.publish(String(data=random.choice(["happy 0.5", "xx", "{", "sad"])))
    listener.audio_info.publish(AudioInfo(channels=1, sample_rate=0, sample_format="S16LE",
                                          coding_format="wave"))                 # rate 0
    listener.audio_info.publish(AudioInfo(channels=1, sample_rate=16000, sample_format="S16LE",
                                          coding_format="mp3"))                  # mp3
    listener.audio.publish(AudioData(data=ros_io._byte_array(b"\xff\xfb" * 100)))
    listener.frames_keep_coming(10)
    listener.audio_info.publish(AudioInfo(channels=1, sample_rate=16000, sample_format="F32LE",
                                          coding_format="wave"))
    time.sleep(0.3)
    nan = np.full(1600, np.nan, dtype="<f4")
    listener.audio.publish(AudioData(data=ros_io._byte_array(nan.tobytes())))    # NaN
    sixty = np.zeros(60 * RATE, dtype="<f4")
    listener.audio.publish(AudioData(data=ros_io._byte_array(sixty.tobytes())))  # 60 s
    listener.frames_keep_coming(10)
    listener.audio_info.publish(AudioInfo(channels=1, sample_rate=16000, sample_format="S16LE",
                                          coding_format="wave"))
    with listener.lock:
        assert any(s["speaking"] for s in listener.states[-40:]), "queued speech was lost"
    listener.frames_keep_coming(10)
    assert node_process[0].poll() is None
    phrases = ("not a whole number", "unknown emotion", "clamped", "invalid JSON",
               "sample_rate 0", "mp3", "NaN")
    # the node handles and logs these asynchronously: give it time behind the 1000-command
    # burst (each line must still appear)
    deadline = time.monotonic() + 30.0
    log = node_process[1].read_text()
    while not all(p in log for p in phrases) and time.monotonic() < deadline:
        time.sleep(0.2)
        log = node_process[1].read_text()
    for phrase in phrases:
        assert phrase in log, f"no log line about {phrase!r}"
    assert log.count("unknown emotion") < 20, "the burst was not rate-limited"


def test_sigint_shuts_the_node_down_cleanly(listener, node_process):
    proc, log = node_process
    listener.frames_keep_coming(3)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    assert "Traceback" not in log.read_text()
