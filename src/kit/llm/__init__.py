"""Models behind the two ports of `kit.core.ports`: the shipped SmolLM2 and MiniLM in this process
(`local_models`, `local_client`), and any model of a gateway over HTTP (`gateway_client`,
`embedders`). Nothing here knows about the gateway's internals, RAG or fine-tuning.
"""
