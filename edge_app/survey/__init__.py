"""The survey: every car's detections in one store, the same crack recognised across
frames, runs and cars, and exports a GIS opens."""
