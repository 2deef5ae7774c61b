"""`crack-distill serve`: an HTTP inference service (ASGI on uvicorn) for any model the
project knows, with dynamic batching, API keys, limits and Prometheus metrics."""
