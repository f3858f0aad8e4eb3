"""Chain of thought: let the model reason first, then read only its final answer line.

    reply = "They are waiting for a card in the post.\nAnswer: card_arrival"
    final_answer(reply)      # -> "card_arrival"
    split_reasoning(reply)   # -> ("They are waiting for a card in the post.", "card_arrival")

The prompt side is a template variant (prompts/intent-cot-v1.yaml) that asks for the reasoning
and then a line "Answer: ...". The last such line wins (a model may draft one and correct it);
a reply without one is an error, never a guess. This module parses text; it calls no model.
"""

from __future__ import annotations

import re

# "Answer: x", "Final answer: x", "**Answer:** x", any case; the line's remainder is the answer.
_ANSWER_LINE = re.compile(r"^[\s*#>-]*(?:final\s+)?answer\s*[*]*\s*:[*\s]*(?P<answer>.*)$", re.I)


class NoFinalAnswer(ValueError):
    """The reply has no "Answer:" line with something after it."""


def split_reasoning(reply: str) -> tuple[str, str]:
    """(the reasoning before the last answer line, the answer); raises NoFinalAnswer."""
    lines = reply.strip().splitlines()
    for index in range(len(lines) - 1, -1, -1):
        match = _ANSWER_LINE.match(lines[index])
        if match and match["answer"].strip(" *`'\"."):
            reasoning = "\n".join(lines[:index]).strip()
            return reasoning, match["answer"].strip(" *`'\".")
    raise NoFinalAnswer('the reply has no final line of the form "Answer: <answer>"')


def final_answer(reply: str) -> str:
    return split_reasoning(reply)[1]
