"""One face for the two OpenVINO Python APIs the car meets.

OpenVINO 2022.3 (the last with the NCS2's MYRIAD plugin) keeps its API in
`openvino.runtime`; current releases expose it as `openvino`. Everything else in
edge_app imports OpenVINO through here.
"""

from __future__ import annotations

from typing import Any, Dict, List


def import_openvino() -> Any:
    """The module holding Core, AsyncInferQueue and friends, whichever API is installed."""
    try:
        import openvino as ov
        if hasattr(ov, "Core"):
            return ov
    except ImportError as e:
        raise RuntimeError(
            "OpenVINO is not installed: pip install openvino (or, on a Raspberry Pi with an "
            "NCS2, OpenVINO 2022.3 from Intel's archive, see scripts/install-pi)") from e
    import openvino.runtime as ov_runtime
    return ov_runtime


def runtime_version() -> str:
    ov = import_openvino()
    getter = getattr(ov, "get_version", None)
    return str(getter()) if getter else "unknown"


def list_devices() -> List[Dict[str, str]]:
    """The inference devices OpenVINO sees, each with its full name."""
    core = import_openvino().Core()
    out = []
    for dev in core.available_devices:
        try:
            name = str(core.get_property(dev, "FULL_DEVICE_NAME"))
        except Exception:  # noqa: BLE001 - a device that cannot describe itself is still listed
            name = ""
        out.append({"device": dev, "name": name})
    return out
