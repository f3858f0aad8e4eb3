"""HTTP plumbing the two services share: request ids, request limits and strict JSON, trusted
hosts and CORS, Prometheus HTTP metrics, and an in-process uvicorn server. It knows no route of
either service.
"""
