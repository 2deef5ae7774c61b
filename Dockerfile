# crack-distill serve in a container: the model server for OpenVINO IRs and ONNX files.
#   docker build -t crack-serve .
#   docker run -p 8080:8080 -e CRACK_SERVE_KEYS=change-me crack-serve            # shipped IR
#   docker run -p 8080:8080 -v $PWD/models:/models -e CRACK_SERVE_KEYS=k crack-serve \
#       /models/other.xml --workers 2
# Serving checkpoints (.pth students or the teacher) needs torch: build with
#   --build-arg TORCH=1 (pip then installs torch==2.13.0; point PIP_EXTRA_INDEX_URL at
#   PyTorch's CPU wheel index to keep the image free of CUDA packages).
FROM python:3.11-slim
ARG TORCH=0
WORKDIR /app
COPY pyproject.toml README.md ./
COPY crack_common crack_common
COPY distill distill
COPY edge_app edge_app
COPY models models
RUN if [ "$TORCH" = 1 ]; then pip install --no-cache-dir torch==2.13.0; fi \
 && pip install --no-cache-dir ".[serve]" "openvino>=2023.0" \
 && useradd --system --home /app serve
USER serve
EXPOSE 8080
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=3)"
ENTRYPOINT ["crack-distill", "serve", "--host", "0.0.0.0", "--port", "8080"]
CMD ["models/crack-hrsegnet-b16.xml"]
