"""Video files and contact sheets: MP4 with muxed audio through imageio-ffmpeg.

No ROS here; used by ``gemo demo`` and ``gemo render``. Encoding goes through
``imageio_ffmpeg.write_frames`` and probing through ``imageio_ffmpeg.read_frames``' header
metadata, so no ffmpeg command line or log is written or parsed here.
"""

import os
import tempfile
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np

#: H.264 preset for :func:`write_mp4` (speed over file size; the clips are short).
X264_PRESET = "veryfast"
#: AAC bit rate of the muxed audio track.
AUDIO_BITRATE = "128k"


def ffmpeg_exe() -> str:
    """Return the path of the ffmpeg binary bundled with imageio-ffmpeg."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def write_mp4(frames: Iterable[np.ndarray], fps: float, path: str,
              audio: Optional[np.ndarray] = None, sample_rate: int = 16000,
              crf: int = 18) -> int:
    """Encode ``uint8 [H, W, 3]`` frames as H.264 MP4, muxing mono ``audio`` in [-1, 1] as AAC.

    Frames stream into ffmpeg one at a time through ``imageio_ffmpeg.write_frames`` (no list
    of all frames is needed), at ``fps`` Hz. Width and height are taken from the first
    frame; yuv420p needs even sizes, so an odd width or height is padded by one black pixel
    at the right or bottom. ``audio`` (sampled at ``sample_rate`` Hz) reaches ffmpeg as a
    temporary 16-bit WAV. ``crf`` is x264's constant rate factor (lower = better). The
    file is written beside ``path`` under a temporary name and renamed to ``path`` once
    ffmpeg has finished it. Returns the number of frames written.

    Raises ValueError on no frames or a frame of another shape or type, RuntimeError when
    ffmpeg fails (its own message is printed on stderr).
    """
    it = iter(frames)
    try:
        first = np.asarray(next(it))
    except StopIteration:
        raise ValueError("no frames to write") from None
    if first.ndim != 3 or first.shape[2] != 3 or first.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [H, W, 3], got {first.dtype} {first.shape}")
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    root, ext = os.path.splitext(path)
    partial = f"{root}.partial{ext or '.mp4'}"
    if os.path.exists(partial):  # left by an interrupted run
        os.unlink(partial)
    tmp_wav = None
    try:
        if audio is not None and len(audio):
            import soundfile as sf

            fd, tmp_wav = tempfile.mkstemp(suffix=".wav")
            os.close(fd)
            sf.write(tmp_wav, np.clip(np.asarray(audio, np.float32), -1, 1),
                     int(sample_rate), subtype="PCM_16")
        count = _encode(partial, _chain(first, it), first.shape, fps, crf, tmp_wav)
        if not os.path.isfile(partial) or os.path.getsize(partial) == 0:
            raise RuntimeError(f"ffmpeg wrote nothing for {path}")
        os.replace(partial, path)
    finally:
        for tmp in (tmp_wav, partial):
            if tmp and os.path.exists(tmp):
                os.unlink(tmp)
    return count


def _encode(path: str, frames: Iterable[np.ndarray], shape: Tuple[int, ...], fps: float,
            crf: int, wav: Optional[str]) -> int:
    """Stream ``frames`` of ``shape`` into ``imageio_ffmpeg.write_frames``; return the count."""
    import imageio_ffmpeg

    h, w = shape[:2]
    output = ["-preset", X264_PRESET, "-crf", str(int(crf)), "-movflags", "+faststart"]
    if wav:
        output += ["-b:a", AUDIO_BITRATE]
    writer = imageio_ffmpeg.write_frames(
        path, (w + w % 2, h + h % 2), fps=float(fps), codec="libx264", pix_fmt_out="yuv420p",
        quality=None, macro_block_size=1, ffmpeg_log_level="error", output_params=output,
        audio_path=wav, audio_codec="aac" if wav else None)
    count = 0
    try:
        writer.send(None)
        for frame in frames:
            frame = np.asarray(frame)
            if frame.shape != shape or frame.dtype != np.uint8:
                raise ValueError(f"frame {count} is {frame.dtype} {frame.shape}, "
                                 f"expected uint8 {shape}")
            if h % 2 or w % 2:
                frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)))
            writer.send(np.ascontiguousarray(frame))
            count += 1
    except OSError as exc:
        raise RuntimeError(f"ffmpeg failed writing {path}: {exc}") from exc
    finally:
        writer.close()  # waits for ffmpeg to finish the file
    return count


def _chain(first: np.ndarray, rest: Iterable[np.ndarray]) -> Iterable[np.ndarray]:
    yield first
    yield from rest


def probe_duration(path: str) -> float:
    """Return the duration (s) of a video file as ffmpeg reports it (NaN if unknown).

    This is the container's duration (the longer of the video and audio tracks), read from
    ``imageio_ffmpeg.read_frames``' header metadata (no frame is read). NaN when the file
    is missing, holds no video track or reports no duration.
    """
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(path)
    try:
        meta = next(reader)
    except (OSError, RuntimeError, IndexError, AttributeError):
        return float("nan")
    finally:
        reader.close()
    duration = float(meta.get("duration") or 0.0)
    return duration if duration > 0 else float("nan")


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
