"""Frame sources: MJPG over HTTP, video files, recorded runs, picamera2, the demo drive."""

from pathlib import Path
from typing import Any


def open_source(spec: str, realtime: bool = True, loop: bool = False, **mjpeg: Any) -> Any:
    """A source from the --source value: an http(s) URL, `demo`, `picamera`, or a path."""
    if spec.startswith(("http://", "https://")):
        from edge_app.sources.mjpeg import MjpegSource
        return MjpegSource(spec, **mjpeg)
    if spec == "picamera":
        from edge_app.sources.picamera import PiCameraSource
        return PiCameraSource()
    from edge_app.sources.files import DEMO_VIDEO, VideoFileSource
    if spec == "demo":
        return VideoFileSource(DEMO_VIDEO, realtime=realtime, loop=loop)
    path = Path(spec)
    if path.is_dir() and (path / "frames.idx").exists():
        from edge_app.sources.recorded import RecordedRunSource
        return RecordedRunSource(path, realtime=realtime)
    if not path.exists():
        raise ValueError(f"source {spec!r}: not a URL, 'demo', 'picamera' or an existing file")
    return VideoFileSource(path, realtime=realtime, loop=loop)
