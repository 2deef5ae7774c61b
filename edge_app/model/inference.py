"""Asynchronous OpenVINO inference with several requests in flight, on the 2022.3 API
(`openvino.runtime`, the NCS2's) and on current OpenVINO alike."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from edge_app.model.ir_model import check_contract, output_ports, read_outputs
from edge_app.model.ov_runtime import import_openvino

log = logging.getLogger(__name__)

# requests in flight when the config says 0: the NCS2 works best with 4; CPU and GPU ask
# the plugin (THROUGHPUT hint) for its optimal number
DEFAULT_REQUESTS = {"MYRIAD": 4, "HDDL": 8}
MYRIAD_HELP = ("MYRIAD (an Intel Neural Compute Stick 2) needs OpenVINO 2022.3 LTS from "
               "Intel's archive (the PyPI wheels have no MYRIAD plugin; OpenVINO 2023.0 and "
               "later dropped it), the NCS2 udev rules (97-myriad-usbboot.rules) and the stick "
               "on a USB port; see scripts/install-pi")


class DeviceError(RuntimeError):
    """The requested inference device is not there."""


def check_device(core: Any, device: str) -> None:
    """Raise DeviceError listing the devices present when `device` is not one of them."""
    if device.split(":")[0] in ("AUTO", "MULTI", "HETERO", "BATCH"):
        return
    present: List[str] = list(core.available_devices)
    base = device.split(".")[0]
    if device in present or any(p.split(".")[0] == base for p in present):
        return
    msg = f"inference device {device!r} not found; present: {', '.join(present) or 'none'}"
    if base == "MYRIAD":
        msg += f". {MYRIAD_HELP}"
    raise DeviceError(msg)


class AsyncInfer:
    """Compiled model + AsyncInferQueue. `submit(tag, image)` blocks while every request is
    busy; `on_result(tag, logits, crack_score)` runs on OpenVINO's thread when one
    finishes (crack_score is None for a model without that output)."""

    def __init__(self, model: Path, device: str,
                 on_result: Callable[[Any, np.ndarray, Optional[float]], None],
                 requests: int = 0, on_error: Optional[Callable[[BaseException], None]] = None):
        ov = import_openvino()
        self.core = ov.Core()
        check_device(self.core, device)
        path = Path(model)
        if not path.is_file():
            raise ValueError(f"model {path}: no such file")
        ov_model = self.core.read_model(str(path))
        self.size = check_contract(ov_model, str(path))
        self.ports = output_ports(ov_model, str(path))
        base = device.split(".")[0]
        config: Dict[str, str] = {}
        if base in ("CPU", "GPU", "AUTO"):
            config["PERFORMANCE_HINT"] = "THROUGHPUT"
        self.compiled = self.core.compile_model(ov_model, device, config)
        n = requests or DEFAULT_REQUESTS.get(base, 0)
        if not n:
            try:
                n = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            except Exception:  # noqa: BLE001 - not every plugin reports it
                n = 2
        self.requests = max(1, n)
        self.device = device
        self.queue = ov.AsyncInferQueue(self.compiled, self.requests)
        self.queue.set_callback(self._done)
        self.on_result, self.on_error = on_result, on_error
        self.errors = 0
        self._lock = threading.Lock()
        log.info("model %s on %s, %d requests in flight", path.name, device, self.requests)

    def _done(self, request: Any, tag: Any) -> None:
        try:
            logits, score = read_outputs(request, *self.ports)
            self.on_result(tag, logits, score)
        except BaseException as e:  # noqa: BLE001 - reported, never lost on OpenVINO's thread
            with self._lock:
                self.errors += 1
            if self.on_error:
                self.on_error(e)

    def submit(self, tag: Any, image: np.ndarray) -> None:
        """Start inference of a BGR u8 (S, S, 3) image."""
        self.queue.start_async({0: np.ascontiguousarray(image[None])}, tag)

    def wait_all(self) -> None:
        self.queue.wait_all()
