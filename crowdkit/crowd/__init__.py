"""Part I, the crowd study: simulated uniform-appearance scenes, CVAT annotations,
validation of matches, tracks, thresholds and the per-run tables."""
