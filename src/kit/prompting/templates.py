"""Versioned prompt templates: a YAML file per version, a system message and a user template.

    prompts/intent-zero-shot-v1.yaml     name: intent-zero-shot, version: 1
    template = load_template("intent-zero-shot")        # the highest version
    messages = template.render(labels=[...], query="Where is my card?")
    # -> [{"role": "system", ...}, {"role": "user", "content": "Where is my card?"}]

Templates are Jinja2 with StrictUndefined: a variable the template uses but the caller did not
pass is an error naming it (never an empty string in the prompt). Values the template does not
use are ignored, so one set of values can fill several variants of a prompt. Values are inserted
as text, never run as template code: a query containing "{{ x }}" stays those characters (which
does not make a prompt safe from instructions hidden in the user's text). A new wording is a new
file (v2), so results logged under one template id stay comparable. This module renders text; it
knows nothing of models or of what the reply should look like beyond `schema`.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kit.core.errors import ConfigError, KitError
from kit.core.ports import ChatMessage

PROMPTS = Path(__file__).parent / "prompts"
_FILE_NAME = re.compile(r"^(?P<name>[a-z0-9-]+)-v(?P<version>\d+)$")
_JINJA = jinja2.Environment(
    undefined=jinja2.StrictUndefined,
    # Prompts are plain text, not HTML: autoescaping would turn "it's" into "it&#39;s".
    autoescape=False,  # noqa: S701
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=False,
)


class TemplateError(KitError, ValueError):
    """A template could not be rendered: a missing variable, or a broken template."""

    type = "template_error"


class PromptTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(pattern=r"^[a-z0-9-]+$")
    version: int = Field(ge=1)
    description: str
    system: str
    user: str
    # A JSON Schema the reply must match (for structured output); None for free text.
    output_schema: dict[str, Any] | None = Field(None, alias="schema")

    @property
    def id(self) -> str:
        """What runs and logs record: "intent-zero-shot-v1"."""
        return f"{self.name}-v{self.version}"

    @cached_property
    def variables(self) -> frozenset[str]:
        """Every variable the system message or user template reads."""
        names: set[str] = set()
        for text in (self.system, self.user):
            names |= jinja2.meta.find_undeclared_variables(_JINJA.parse(text))
        return frozenset(names)

    def render_system(self, **values: Any) -> str:
        return self._render(self.system, values)

    def render_user(self, **values: Any) -> str:
        return self._render(self.user, values)

    def render(self, **values: Any) -> list[ChatMessage]:
        """[system, user], filled with `values`; a missing variable raises TemplateError."""
        return [
            {"role": "system", "content": self.render_system(**values)},
            {"role": "user", "content": self.render_user(**values)},
        ]

    def _render(self, text: str, values: dict[str, Any]) -> str:
        if missing := sorted(self.variables - values.keys()):
            raise TemplateError(
                f"Template {self.id} needs the variable(s) {missing}; "
                f"it reads {sorted(self.variables)} and was given {sorted(values)}."
            )
        try:
            return _JINJA.from_string(text).render(**values).strip()
        except jinja2.UndefinedError as exc:  # e.g. {{ example.label }} on a value without it
            raise TemplateError(f"Template {self.id}: {exc.message}") from None


def available_templates(folder: Path = PROMPTS) -> list[str]:
    """Every template id in `folder`, sorted: ["intent-cot-v1", "intent-json-v1", ...]."""
    return sorted(path.stem for path in folder.glob("*.yaml"))


def load_template(name: str, folder: Path = PROMPTS) -> PromptTemplate:
    """A template by id ("intent-zero-shot-v1") or by name, which picks the highest version."""
    path = folder / f"{name}.yaml"
    if not path.exists():
        versions = sorted(
            (int(m["version"]), p)
            for p in folder.glob(f"{name}-v*.yaml")
            if (m := _FILE_NAME.match(p.stem)) and m["name"] == name
        )
        if not versions:
            raise ConfigError(
                f"No prompt template {name!r} in {folder}; choose one of "
                f"{available_templates(folder)}."
            )
        path = versions[-1][1]
    return _read(path)


def _read(path: Path) -> PromptTemplate:
    try:
        template = PromptTemplate.model_validate(yaml.safe_load(path.read_text()))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from None
    if path.stem != template.id:  # the file name is how people find a version: keep it true
        raise ConfigError(f"{path} holds {template.id}; name the file {template.id}.yaml")
    try:
        template.variables  # noqa: B018 -- parse both texts now: a syntax error fails at load
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"{path}: template syntax error on line {exc.lineno}: {exc}") from None
    return template
