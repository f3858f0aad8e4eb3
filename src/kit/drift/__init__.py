"""Drift monitoring: are recent questions still like the ones the system was built and tested for?

    query log (store) -> windows (collect) -> embeddings + similarity to the corpus (corpus)
      -> scores (score) -> Prometheus gauges (export) + MLflow run + HTML report (report)

`run.run_drift` runs every stage; `kit drift` is its command. Each stage is callable alone, from a
notebook or a test. The RAG service writes the query log through `store.QueryLog`.
"""
