"""The kernel every other part of the kit builds on, and which imports none of them: typed
settings, structured logging, the error tree, secrets, hashed API keys, MLflow tracking set-up,
and the two ports through which everything calls a model (`ports.ChatModel`, `ports.Embedder`).
"""
