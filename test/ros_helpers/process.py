"""Stopping a node or launch process the way a terminal's Ctrl-C does."""

import signal
import subprocess


def stop_process(proc: subprocess.Popen, timeout: float = 20.0) -> int:
    """SIGINT ``proc`` if it still runs, wait up to ``timeout`` s, else kill it.

    Returns the exit code (negative when it had to be killed).
    """
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
