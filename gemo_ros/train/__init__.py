"""Training: stage 1 (Gaussian blendshapes), stage 2 (emotion residual), audio-to-expression."""
