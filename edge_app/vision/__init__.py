"""What the car sees: frames and the vision pipeline, crack measurements, the
operator's overlay and pipeline statistics."""
