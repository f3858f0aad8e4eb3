"""HTTP routes of the RAG service: thin translations to and from `RagService`."""
