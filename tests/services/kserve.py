"""A KServe v2 inference server (REST) for the car's remote client's tests: the open
inference protocol's health, metadata and infer endpoints, with the binary data extension
(tensors after a JSON header whose length Inference-Header-Content-Length gives) and plain
JSON tensors, over one OpenVINO IR. No KServe-compatible server (OpenVINO Model Server,
Triton) can be installed from this project's registries, so the tests start this one.

Run: python -m tests.services.kserve MODEL.xml --port P [--name crack] [--json-only]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def app(model_xml: Path, name: str, json_only: bool = False) -> Starlette:
    from edge_app.model.ir_model import IRModel
    ir = IRModel(model_xml, "CPU")
    s = ir.size
    meta = {"name": name, "versions": ["1"], "platform": "openvino",
            "inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, s, s, 3]}],
            "outputs": [{"name": "logits", "datatype": "FP32", "shape": [1, 2, s, s]}]}

    def known(request: Request) -> bool:
        return request.path_params["name"] == name

    async def ready(request: Request) -> Response:
        return Response(status_code=200 if known(request) else 404)

    async def metadata(request: Request) -> Response:
        if not known(request):
            return JSONResponse({"error": "unknown model"}, 404)
        return JSONResponse(meta)

    async def infer(request: Request) -> Response:
        if not known(request):
            return JSONResponse({"error": "unknown model"}, 404)
        body = await request.body()
        size = request.headers.get("inference-header-content-length")
        head = json.loads(body[:int(size)] if size else body)
        tensor = head["inputs"][0]
        if tensor["datatype"] != "UINT8" or tensor["shape"] != [1, s, s, 3]:
            return JSONResponse({"error": f"input must be UINT8 [1, {s}, {s}, 3]"}, 400)
        if size:
            image = np.frombuffer(body[int(size):], np.uint8)
        else:
            image = np.asarray(tensor["data"], np.uint8)
        logits = ir.infer(image.reshape(s, s, 3))[None].astype(np.float32)
        wants_binary = any((o.get("parameters") or {}).get("binary_data")
                           for o in head.get("outputs", []))
        out = {"name": "logits", "datatype": "FP32", "shape": [1, 2, s, s]}
        if wants_binary and not json_only:
            raw = logits.tobytes()
            header = json.dumps({"model_name": name, "outputs": [
                {**out, "parameters": {"binary_data_size": len(raw)}}]}).encode()
            return Response(header + raw, media_type="application/octet-stream",
                            headers={"Inference-Header-Content-Length": str(len(header))})
        return JSONResponse({"model_name": name,
                             "outputs": [{**out, "data": logits.ravel().tolist()}]})

    return Starlette(routes=[
        Route("/v2/health/ready", lambda r: Response(status_code=200)),
        Route("/v2/models/{name}/ready", ready),
        Route("/v2/models/{name}", metadata),
        Route("/v2/models/{name}/infer", infer, methods=["POST"])])


def main(argv: list) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="crack")
    ap.add_argument("--json-only", action="store_true", help="answer in JSON tensors only")
    a = ap.parse_args(argv)
    uvicorn.run(app(a.model, a.name, a.json_only), host="127.0.0.1", port=a.port,
                log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
