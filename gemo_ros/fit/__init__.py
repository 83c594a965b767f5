"""Fitting the ICT head to a photo: landmark fit, mesh z-buffer, photo projection and fill.

``from_photo``: the whole of ``gemo avatar from-photo`` (landmarks -> fit -> head -> colours
-> photometric refinement); ``landmark_fit``: identity, expression, head pose and camera
from face landmarks; ``raster``: a triangle z-buffer (visibility, ray casting);
``texture``: the photo's colours on the Gaussians with symmetry and skin-tone fill.
"""
