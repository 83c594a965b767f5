"""gemo_ros: an expressive, talking 3D Gaussian-splatting face for social robots."""

__version__ = "0.1.0"
