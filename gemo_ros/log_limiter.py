"""Rate-limited log lines: one line per kind of problem per period, counting the rest."""

import logging
import time
from collections import OrderedDict
from typing import Callable, Optional

#: Kinds remembered at most (each unknown name is a kind: a storm of new names must not grow
#: memory without bound).
MAX_KEYS = 256


class LogLimiter:
    """Let a log line of a given key through at most once per ``period_s``; count the rest."""

    def __init__(self, period_s: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.period_s = period_s
        self._clock = clock
        self._last: "OrderedDict[str, float]" = OrderedDict()
        self._suppressed: "OrderedDict[str, int]" = OrderedDict()

    def __call__(self, key: str) -> Optional[int]:
        """Return None to suppress, else the number of lines suppressed since the last one."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.period_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return None
        self._last[key] = now
        self._last.move_to_end(key)
        while len(self._last) > MAX_KEYS:  # forget the kind reported longest ago
            old, _ = self._last.popitem(last=False)
            self._suppressed.pop(old, None)
        return self._suppressed.pop(key, 0)

    def log(self, logger: logging.Logger, key: str, message: str,
            level: int = logging.WARNING) -> None:
        """Log ``message`` unless a line of ``key`` went out within the period."""
        skipped = self(key)
        if skipped is not None:
            logger.log(level, message + (f" ({skipped} similar suppressed)" if skipped else ""))
