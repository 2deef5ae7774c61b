"""Running the crack model: the IR contract, asynchronous OpenVINO requests on both
OpenVINO APIs, and remote inference with a local fallback."""
