"""What every service and pipeline shares, and nothing else: settings, logging, request ids,
metrics helpers, errors, the LLM client interface and the shipped local models."""
