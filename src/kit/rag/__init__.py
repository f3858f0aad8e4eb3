"""Retrieval-augmented generation as a library: documents in, chunks indexed, answers checked.

    paths      which files, below KIT_DOCS_ROOT          loaders   files and records -> Documents
    clean      markup -> text                            chunk     Documents -> Chunks
    sparse     BM25 terms                                store     the Qdrant collection
    ingest     the incremental run, and its report       retrieval dense, keyword, hybrid search
    rerank     the optional cross-encoder stage          answer    prompts, citations checked

`kit ingest PATH...` runs the ingestion stages; the RAG service (kit.rag_service) serves answers.
Nothing here knows about HTTP; models are reached through the ports of kit.core.
"""
