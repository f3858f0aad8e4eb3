"""A ReAct loop: the model alternates Thought / Action / Action Input, the loop runs the tool
and answers with an Observation, until a Final Answer or `max_steps`.

    trace = run_react(chat, "What is 17 * 23?", [calculator()], max_steps=4)
    trace.answer    # "391", or None when it stopped at max_steps
    print(trace)    # every step: the model's reply, the tool call, the observation

Nothing the model writes is trusted: an unknown tool, a missing "Action Input:" or a reply in
no known format becomes an observation telling the model what went wrong and what to write,
and a tool's exception becomes "Error from <tool>: ...". A model that writes its own
"Observation:" line is cut off there: observations come from tools only. The loop knows
nothing of which model it talks to (chat.py) or what the tools do (tools.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from kit.core.ports import ChatMessage, Usage
from kit.prompting.chat import Chat
from kit.prompting.templates import PromptTemplate, load_template
from kit.prompting.tools import Tool

_FIELD = re.compile(
    r"^[\s*]*(thought|action input|action|final answer|observation)[\s*]*:[\s*]*(.*)$", re.I
)
FORMAT_HINT = (
    'Reply with "Thought: ..." and then either "Action: <tool name>" and "Action Input: <input>",'
    ' or "Final Answer: <answer>".'
)
MAX_OBSERVATION_CHARS = 1500


class StepFormatError(ValueError):
    """A reply that is not a ReAct step; the message is sent back to the model."""


@dataclass(frozen=True)
class ParsedStep:
    thought: str
    action: str | None = None
    action_input: str | None = None
    final_answer: str | None = None


@dataclass
class Step:
    reply: str  # what the model wrote, cut at any "Observation:" of its own
    parsed: ParsedStep | None  # None: the reply was not a valid step
    observation: str | None = None  # what the loop answered (a tool result or an error)


@dataclass
class Trace:
    question: str
    steps: list[Step] = field(default_factory=list)
    answer: str | None = None
    stopped: Literal["final_answer", "max_steps"] = "max_steps"
    usage: Usage = field(default_factory=lambda: Usage(0, 0))
    models: set[str] = field(default_factory=set)  # who answered (a fallback shows up here)

    def __str__(self) -> str:
        lines = [f"Question: {self.question}"]
        for number, step in enumerate(self.steps, 1):
            lines.append(f"--- step {number} ---")
            lines += [f"  {line}" for line in step.reply.strip().splitlines()]
            if step.observation is not None:
                lines.append(f"  Observation: {step.observation}")
        lines.append(
            f"=> {self.stopped} after {len(self.steps)} step(s); answer: {self.answer!r}; "
            f"tokens {self.usage.prompt_tokens} in / {self.usage.completion_tokens} out; "
            f"answered by {', '.join(sorted(self.models))}"
        )
        return "\n".join(lines)


def parse_step(reply: str) -> tuple[str, ParsedStep]:
    """(the reply cut at the model's own next step or observation, the parsed step).

    Raises StepFormatError with a message for the model when it is not a valid step.
    """
    fields: dict[str, str] = {}
    kept: list[str] = []
    current: str | None = None
    for line in reply.strip().splitlines():
        match = _FIELD.match(line)
        if match:
            key = match[1].lower()
            if key == "observation" or key in fields:  # the model began writing the next turn
                break
            fields[key], current = match[2].strip(), key
        elif current is not None:
            fields[current] = f"{fields[current]}\n{line}".strip()
        kept.append(line)
    cut = "\n".join(kept).strip()
    thought = fields.get("thought", "")
    action, final = fields.get("action"), fields.get("final answer")
    if action is not None and final is not None:
        raise StepFormatError(
            "Write either an Action or a Final Answer, not both: wait for the Observation."
        )
    if final is not None:
        if not final:
            raise StepFormatError('"Final Answer:" is empty. ' + FORMAT_HINT)
        return cut, ParsedStep(thought, final_answer=final)
    if action is None:
        raise StepFormatError('No "Action:" or "Final Answer:" line. ' + FORMAT_HINT)
    if "action input" not in fields:
        raise StepFormatError(f'"Action: {action}" needs an "Action Input:" line. ' + FORMAT_HINT)
    name = action.strip(" `'\"[]()")
    return cut, ParsedStep(thought, action=name, action_input=fields["action input"].strip("`"))


def observe(step: ParsedStep, tools: Sequence[Tool]) -> str:
    """Run the step's tool; an unknown tool or a tool's error is an observation too."""
    by_name = {tool.name.lower(): tool for tool in tools}
    tool = by_name.get((step.action or "").lower())
    if tool is None:
        return f"Unknown tool {step.action!r}. Available tools: {', '.join(by_name)}."
    try:
        result = tool.run(step.action_input or "")
    except Exception as exc:  # any tool failure is news for the model, not a crash of the loop
        return f"Error from {tool.name}: {exc}"
    return result[:MAX_OBSERVATION_CHARS]


def run_react(
    chat: Chat,
    question: str,
    tools: Sequence[Tool],
    *,
    template: PromptTemplate | None = None,
    max_steps: int = 5,
) -> Trace:
    """Ask, parse, act, observe; stop at a final answer or after `max_steps` model calls."""
    template = template or load_template("react")
    messages: list[ChatMessage] = template.render(tools=list(tools), question=question)
    trace = Trace(question)
    for _ in range(max_steps):
        result = chat(messages)
        trace.usage = Usage(
            trace.usage.prompt_tokens + result.usage.prompt_tokens,
            trace.usage.completion_tokens + result.usage.completion_tokens,
        )
        trace.models.add(result.model)
        try:
            cut, parsed = parse_step(result.text)
        except StepFormatError as exc:
            step = Step(result.text.strip(), None, f"Invalid step: {exc}")
        else:
            if parsed.final_answer is not None:
                trace.steps.append(Step(cut, parsed))
                trace.answer, trace.stopped = parsed.final_answer, "final_answer"
                return trace
            step = Step(cut, parsed, observe(parsed, tools))
        trace.steps.append(step)
        messages = [
            *messages,
            {"role": "assistant", "content": step.reply},
            {"role": "user", "content": f"Observation: {step.observation}"},
        ]
    return trace
