"""The model gateway: an OpenAI-compatible API in front of local and cloud models.

Clients speak the OpenAI API to it; it picks a deployment for the requested model, falls back
along the model's chain when one fails, and applies auth, limits, budgets, caching and metrics.
It knows nothing about RAG or fine-tuning: they are its clients.
"""
