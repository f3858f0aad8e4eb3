"""The AI engineering kit: one package, in layers. A module imports only from layers below it.

    kit.cli, kit.notebook        the `kit` command and the notebooks' set-up     (entry points)
    kit.runtime                  wiring for one process: which gateway, which embedder
    kit.gateway | kit.rag_service    the two web services, independent of each other   (apps)
    kit.web                      HTTP plumbing both services share
    kit.evaluate                 metrics over question sets, judges, logged to MLflow
    kit.prompting | kit.drift    prompt patterns; drift monitoring
    kit.finetune | kit.rag       fine-tuning and its registry; ingestion, retrieval, answers
    kit.llm                      the shipped models, and the gateway's HTTP client
    kit.core                     settings, logging, errors, secrets, keys, tracking, the ports

`make lint` checks these rules (import-linter, the contracts in pyproject.toml), and
docs/architecture.md draws them. Importing the package loads nothing heavy: models, clients and
servers are made by entry points, never at import time.
"""
