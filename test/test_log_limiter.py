"""Rate-limited log lines (gemo_ros.log_limiter)."""

from gemo_ros.log_limiter import MAX_KEYS, LogLimiter


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_one_line_per_key_per_period_then_the_count_of_the_suppressed():
    clock = Clock()
    limit = LogLimiter(period_s=2.0, clock=clock)
    assert limit("bad audio") == 0
    assert limit("bad audio") is None and limit("bad audio") is None
    assert limit("bad emotion") == 0                       # another kind is not held back
    clock.t = 2.0
    assert limit("bad audio") == 2


def test_a_storm_of_new_keys_keeps_memory_bounded():
    clock = Clock()
    limit = LogLimiter(clock=clock)
    for i in range(3 * MAX_KEYS):
        assert limit(f"unknown emotion {i}") == 0
    assert len(limit._last) == MAX_KEYS
    assert limit("unknown emotion 0") == 0                 # forgotten, so reported again
