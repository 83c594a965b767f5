"""Audio input checks, PCM conversion and exact streaming resampling.

Every entry point of the audio stage turns user samples into float32 mono with
:func:`to_float_mono` (clear ``ValueError`` on bad input) and converts rates with a
polyphase FIR (:func:`scipy.signal.resample_poly`). :class:`StreamResampler` produces the
same samples chunk by chunk as one call on the whole signal, which is what makes streamed
and whole-utterance inference agree.
"""

from math import gcd
from typing import Tuple

import numpy as np

#: Accepted input sample rates in Hz (telephone to studio).
MIN_RATE = 4000
MAX_RATE = 192000
#: Largest |sample| accepted for float input (some pipelines overshoot 1.0 slightly).
FLOAT_LIMIT = 4.0


def check_rate(rate) -> int:
    """Return ``rate`` as int Hz; ValueError unless it is a finite number in 4..192 kHz."""
    try:
        r = float(rate)
    except (TypeError, ValueError):
        raise ValueError(f"sample rate must be a number in Hz, got {rate!r}") from None
    if not np.isfinite(r) or r != int(r) or not MIN_RATE <= r <= MAX_RATE:
        raise ValueError(f"sample rate {rate!r} Hz is not supported: "
                         f"need an integer in [{MIN_RATE}, {MAX_RATE}] Hz")
    return int(r)


def to_float_mono(samples) -> np.ndarray:
    """Convert PCM samples to float32 mono in about [-1, 1].

    Args:
        samples: ``[S]`` mono or ``[S, C]`` interleaved frames (channels averaged);
            int16 (/32768), int32 (/2**31), uint8 (offset 128), float (as is), or a Python
            list of ints (taken as 16-bit PCM).

    Raises:
        ValueError: empty input, more than 2 dimensions, NaN/inf, integers outside 16-bit
            range in a list/int64 array, or float samples beyond +-4 (unscaled PCM?).
    """
    if samples is None:
        raise ValueError("audio samples are None")
    x = np.asarray(samples)
    if x.dtype == object:
        raise ValueError("audio samples must be numbers (got an object array)")
    if x.size == 0:
        raise ValueError("audio chunk is empty")
    if x.ndim == 2:
        if x.shape[1] > 16 and x.shape[0] <= 16:
            raise ValueError(f"audio of shape {x.shape} looks like [C, S]; pass [S, C] frames")
    elif x.ndim != 1:
        raise ValueError(f"audio must be [S] or [S, C], got shape {x.shape}")
    if x.dtype == np.int16:
        y = x.astype(np.float32) / 32768.0
    elif x.dtype == np.int32:
        y = (x.astype(np.float64) / 2147483648.0).astype(np.float32)
    elif x.dtype == np.uint8:
        y = (x.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_:
        # A plain list of ints becomes int64: read it as 16-bit PCM and refuse overflow.
        peak = int(np.abs(x.astype(np.int64)).max())
        if peak > 32768:
            raise ValueError(f"integer samples overflow 16-bit PCM (max |x| = {peak}); "
                             "pass int16/int32 arrays or float in [-1, 1]")
        y = x.astype(np.float32) / 32768.0
    elif np.issubdtype(x.dtype, np.floating):
        y = x.astype(np.float32)
        if not np.all(np.isfinite(y)):
            raise ValueError("audio contains NaN or inf")
        peak = float(np.abs(y).max())
        if peak > FLOAT_LIMIT:
            raise ValueError(f"float samples must be in [-1, 1], max |x| = {peak:g} "
                             "(unscaled PCM? divide by 32768)")
    else:
        raise ValueError(f"unsupported audio dtype {x.dtype}")
    if y.ndim == 2:
        y = y.mean(axis=1, dtype=np.float32)
    return np.ascontiguousarray(y, dtype=np.float32)


def ratio(rate_in: int, rate_out: int) -> Tuple[int, int]:
    """Return the reduced (up, down) factors from ``rate_in`` to ``rate_out``."""
    g = gcd(int(rate_in), int(rate_out))
    return int(rate_out) // g, int(rate_in) // g


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample a whole 1-D signal with a polyphase FIR; float32 ``[ceil(S*out/in)]``."""
    from scipy.signal import resample_poly

    up, down = ratio(rate_in, rate_out)
    if up == down:
        return np.asarray(x, np.float32)
    return resample_poly(np.asarray(x, np.float64), up, down).astype(np.float32)


class StreamResampler:
    """Chunk-wise resampling that reproduces :func:`resample` on the concatenated input.

    Output sample n of ``resample_poly`` depends on input samples within
    ``half = 10 * max(up, down) / up`` of ``n * down / up``. :meth:`push` returns the outputs
    whose support has fully arrived; :meth:`tail` returns the rest as if the input ended now
    (zero padding, like the whole-signal call). The FIR runs on a short segment that starts
    on an input index that is a multiple of ``down`` so that its output grid coincides with
    the global one.
    """

    def __init__(self, rate_in: int, rate_out: int) -> None:
        self.rate_in = check_rate(rate_in)
        self.rate_out = int(rate_out)
        self.up, self.down = ratio(self.rate_in, self.rate_out)
        self.identity = self.up == self.down
        self._half_in = int(np.ceil(10 * max(self.up, self.down) / self.up)) + 2
        self._buf = np.zeros(0, np.float64)   # input samples from index self._buf_start
        self._buf_start = 0
        self._n_in = 0                         # input samples received
        self._n_out = 0                        # output samples emitted as final

    def _compute(self, n_from: int, n_to: int) -> np.ndarray:
        """Compute outputs [n_from, n_to) (global indices), zero-padding the input end."""
        from scipy.signal import resample_poly

        if n_to <= n_from:
            return np.zeros(0, np.float32)
        centre = n_from * self.down // self.up
        a = max(0, centre - self._half_in)
        a = max(a - a % self.down, self._buf_start)  # _buf_start is a multiple of down
        seg = self._buf[a - self._buf_start:]
        y = resample_poly(seg, self.up, self.down)
        off = a * self.up // self.down
        lo, hi = n_from - off, n_to - off
        out = np.zeros(n_to - n_from, np.float64)
        valid = y[max(lo, 0):min(hi, len(y))]
        out[max(0, -lo):max(0, -lo) + len(valid)] = valid
        return out.astype(np.float32)

    def push(self, x: np.ndarray) -> np.ndarray:
        """Add input samples; return the newly final output samples (float32)."""
        x = np.asarray(x, np.float64)
        if self.identity:
            self._n_in += len(x)
            self._n_out += len(x)
            return x.astype(np.float32)
        self._buf = np.concatenate([self._buf, x])
        self._n_in += len(x)
        # Output n is final when input up to n*down/up + half has arrived.
        n_final = max(0, ((self._n_in - 1 - self._half_in) * self.up) // self.down)
        n_final = min(n_final, self.total_out())
        out = self._compute(self._n_out, n_final)
        self._n_out = max(self._n_out, n_final)
        # Keep only the input still needed by future outputs.
        keep_from = max(0, self._n_out * self.down // self.up - 2 * self._half_in)
        keep_from -= keep_from % self.down
        if keep_from > self._buf_start:
            self._buf = self._buf[keep_from - self._buf_start:]
            self._buf_start = keep_from
        return out

    def total_out(self) -> int:
        """Return the count of output samples of the whole input so far."""
        return -(-self._n_in * self.up // self.down)

    def tail(self) -> np.ndarray:
        """Return the not-yet-final outputs as if the input ended now."""
        if self.identity:
            return np.zeros(0, np.float32)
        return self._compute(self._n_out, self.total_out())
