"""Video files and contact sheets: MP4 with muxed audio through imageio-ffmpeg's ffmpeg.

No ROS here; used by ``gemo demo`` and ``gemo render``.
"""

import os
import subprocess
import tempfile
from typing import Iterable, List, Optional, Sequence

import numpy as np


def ffmpeg_exe() -> str:
    """Return the path of the ffmpeg binary bundled with imageio-ffmpeg."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def write_mp4(frames: Iterable[np.ndarray], fps: float, path: str,
              audio: Optional[np.ndarray] = None, sample_rate: int = 16000,
              crf: int = 18) -> int:
    """Encode ``uint8 [H, W, 3]`` frames as H.264 MP4, muxing mono ``audio`` in [-1, 1] as AAC.

    Frames stream into ffmpeg one at a time (no list of all frames is needed). Width and
    height are taken from the first frame and must be even for yuv420p, so odd sizes are
    padded by one pixel. Returns the number of frames written.

    Raises RuntimeError with ffmpeg's message when encoding fails, ValueError on no frames.
    """
    it = iter(frames)
    try:
        first = np.asarray(next(it))
    except StopIteration:
        raise ValueError("no frames to write") from None
    if first.ndim != 3 or first.shape[2] != 3 or first.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [H, W, 3], got {first.dtype} {first.shape}")
    h, w = first.shape[:2]
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    tmp_wav = None
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", f"{fps:g}",
           "-i", "-"]
    if audio is not None and len(audio):
        import soundfile as sf

        fd, tmp_wav = tempfile.mkstemp(suffix=".wav")
        os.close(fd)
        sf.write(tmp_wav, np.clip(np.asarray(audio, np.float32), -1, 1), int(sample_rate),
                 subtype="PCM_16")
        cmd += ["-i", tmp_wav, "-c:a", "aac", "-b:a", "128k"]
    cmd += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-preset", "veryfast",
            "-crf", str(crf), "-pix_fmt", "yuv420p", "-movflags", "+faststart", path]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    count = 0
    try:
        for frame in _chain(first, it):
            frame = np.ascontiguousarray(frame, dtype=np.uint8)
            if frame.shape != first.shape:
                raise ValueError(f"frame {count} is {frame.shape}, expected {first.shape}")
            proc.stdin.write(frame.tobytes())
            count += 1
        proc.stdin.close()
        err = proc.stderr.read().decode(errors="replace")
        if proc.wait() != 0:
            raise RuntimeError(f"ffmpeg failed writing {path}: {err.strip()}")
    finally:
        if proc.poll() is None:
            proc.kill()
        if tmp_wav:
            os.unlink(tmp_wav)
    return count


def _chain(first: np.ndarray, rest: Iterable[np.ndarray]) -> Iterable[np.ndarray]:
    yield first
    yield from rest


def probe_duration(path: str) -> float:
    """Return the duration (s) of a media file as reported by ffmpeg (NaN if unknown)."""
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", path], capture_output=True,
                         text=True).stderr
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Duration:"):
            hh, mm, ss = line.split()[1].rstrip(",").split(":")
            return int(hh) * 3600 + int(mm) * 60 + float(ss)
    return float("nan")


def contact_sheet(images: Sequence[np.ndarray], labels: Sequence[str], columns: int,
                  path: str, cell: Optional[int] = None) -> np.ndarray:
    """Tile images with a caption under each into one PNG; return the sheet ``uint8``.

    ``cell`` resizes every image to ``cell x cell`` pixels (default: the first one's size).
    """
    from PIL import Image, ImageDraw

    if not images:
        raise ValueError("no images for the contact sheet")
    h, w = images[0].shape[:2]
    if cell:
        h = w = int(cell)
    caption = 16
    rows = (len(images) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * w, rows * (h + caption)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, (img, label) in enumerate(zip(images, labels)):
        r, c = divmod(i, columns)
        tile = Image.fromarray(np.asarray(img, np.uint8)).resize((w, h), Image.BILINEAR)
        sheet.paste(tile, (c * w, r * (h + caption)))
        draw.text((c * w + 3, r * (h + caption) + h + 2), label, fill=(0, 0, 0))
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    sheet.save(path)
    return np.asarray(sheet)


def hold_frames(stamps: Sequence[float], frames: List[np.ndarray], start: float, fps: float,
                count: int) -> Iterable[np.ndarray]:
    """Resample frames stamped at irregular times to a constant rate by holding.

    Yields ``count`` frames for times ``start + k / fps``: each the latest frame whose stamp
    is <= that time (the first frame before any). ``stamps`` must be increasing.
    """
    j = 0
    for k in range(count):
        t = start + k / fps
        while j + 1 < len(stamps) and stamps[j + 1] <= t + 1e-9:
            j += 1
        yield frames[j]
