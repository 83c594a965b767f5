"""Displays of the face: a web panel (browser, MJPEG) and a fullscreen SDL window.

Both show the latest frame of ``face/image`` (or ``face/image/compressed``), letterboxed on
black. Everything here is ROS-free; the ``face_panel`` and ``face_window`` executables
(:mod:`gemo_ros.panel_node`) subscribe to the topic and feed a :class:`FrameHub`.
"""
