"""Ingestion: load documents from files, clean them, chunk them, embed the chunks, index in Qdrant.

Stages, one module each, each callable alone: `paths` (which files, below KIT_DOCS_ROOT),
`loaders` (files and records -> Documents), `clean` (markup -> text), `chunk` (Documents ->
Chunks), `embed`, `index` (Qdrant), `report`. `kit ingest PATH...` runs them all, incrementally.
"""
