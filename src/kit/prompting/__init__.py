"""Prompt engineering as code: each pattern is one small module, and models are reached only
through a chat callable (chat.py), so every pattern runs against the gateway, the local model
or the scripted test double (kit.llm.scripted) alike.

    chat.py        the chat callable: bind a gateway client and a model alias; cloud key check
    templates.py   versioned prompt files (prompts/*.yaml): system message + user template
    fewshot.py     few-shot turns: fixed examples, or the k nearest by embedding
    cot.py         chain of thought: the final "Answer:" line of a reasoned reply
    structured.py  JSON validated against a JSON Schema, retried with the error sent back
    react.py       a ReAct loop: Thought / Action / Observation, until a final answer or max steps
    tools.py       tools for it: a calculator that never evals, search over the indexed docs
    intents.py     the labelled BANKING77 sample the comparisons run on
    compare.py     prompt variants scored on a test set, one MLflow run per variant
"""
