"""`gemo demo`'s verdict on a recording (gemo_ros.commands.demo.check_motion).

The demo itself, run again and again over DDS, is in test/integration/test_node_soak.py.
"""

import numpy as np

from gemo_ros.commands.demo import check_motion


def test_check_motion_accepts_moving_frames_and_names_each_failure():
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (8, 8, 3), dtype=np.uint8) for _ in range(100)]
    stamps = list(np.arange(100) / 25.0)
    assert check_motion(stamps, frames, 25.0, 0.0, 4.0) == []
    frozen = [frames[0]] * 100
    assert any("froze" in p for p in check_motion(stamps, frozen, 25.0, 0.0, 4.0))
    gap = stamps[:40] + [s + 3.0 for s in stamps[40:]]
    problems = check_motion(gap, frames, 25.0, 0.0, 7.0)
    assert any("stopped for 3.0 s" in p for p in problems)
    slow = stamps[::4]
    assert any("below half" in p for p in check_motion(slow, frames[::4], 25.0, 0.0, 4.0))
