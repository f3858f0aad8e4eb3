"""The RAG service: questions answered from the indexed documents, with checked citations.

It retrieves with `kit.rag.retrieval`, prompts a model through the gateway client (never a
provider directly), and checks every citation the model makes against what was retrieved.
Every caller needs a key (`auth.py`, `deps.py`); only admin keys may make it ingest (`jobs.py`).
"""
