"""A rule phrase: plain text, or a mapping saying how that one phrase matches.

In YAML a phrase is either a plain string, stemmed like every phrase (``invade`` also matches
"invaded", "invading", "invades"), or a mapping for the exceptions::

    any:
      - invasion                               # stemmed: invasion, invasions, ...
      - {phrase: strikes, exact: true}         # only "strikes" (any case), not "strike"
      - {phrase: US, case: sensitive}          # only "US" in capitals, never "us"

``exact: true``: the phrase matches only its own word forms, case-insensitively. ``exact:
false`` on a phrase overrides a rule-level ``exact: true``. ``case: sensitive``: the words must
also be written in the phrase's capitals (which implies exact).

Case sensitivity is never inferred from how a phrase is written. An automatic rule ("a phrase in
capitals of 2-5 letters is case-sensitive") would turn every acronym already in the rule files
case-sensitive, and outlets do not agree on acronyms: the British press writes "Nato", "Isis",
"Covid"; a rule with NATO must keep matching them. The few acronyms whose lower-case form is an
everyday word (US/us, WHO/who, IT/it, AIDS/aids) are marked by the author, who knows them.

A text written entirely in capitals ("MAY RESIGNS AS TORIES REVOLT") carries no case, so there
a case-sensitive phrase compares without case: such a headline still matches ``May`` and
``US``; "tell us" in ordinary text never matches ``US``.

A :class:`Phrase` *is* a ``str`` (the text as written), so code that reads a rule's phrases as
text keeps working; the options ride along as attributes.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

MAX_PHRASE = 200


class PhraseOptions(BaseModel):
    """The mapping form of a phrase, as validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    phrase: str = Field(min_length=1, max_length=MAX_PHRASE, description="The words to match.")
    exact: bool | None = Field(
        default=None,
        description="true: only these word forms (any case), no stemming. "
        "Absent: the rule's `exact` (default false).",
    )
    case: Literal["sensitive", "insensitive"] = Field(
        default="insensitive",
        description="sensitive: the words must be written in these capitals (implies exact).",
    )


class Phrase(str):
    """A rule phrase: the text as written, plus ``exact`` (None: the rule's default) and
    ``case_sensitive``. Equal to (and hashed as) its text."""

    exact: bool | None
    case_sensitive: bool

    def __new__(cls, text: str, exact: bool | None = None, case_sensitive: bool = False) -> Phrase:
        self = super().__new__(cls, text)
        self.exact = exact
        self.case_sensitive = case_sensitive
        return self

    @property
    def plain(self) -> bool:
        """Written as a plain string (no options)."""
        return self.exact is None and not self.case_sensitive

    def is_exact(self, rule_default: bool = False) -> bool:
        """Whether the phrase matches literal word forms only (case-sensitive ones always do)."""
        if self.case_sensitive:
            return True
        return rule_default if self.exact is None else self.exact

    def to_yaml(self) -> str | dict[str, Any]:
        if self.plain:
            return str(self)
        out: dict[str, Any] = {"phrase": str(self)}
        if self.exact is not None:
            out["exact"] = self.exact
        if self.case_sensitive:
            out["case"] = "sensitive"
        return out

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        options = handler.generate_schema(PhraseOptions)

        def validate(value: Any, inner: core_schema.ValidatorFunctionWrapHandler) -> Phrase:
            if isinstance(value, Phrase):
                return value
            if isinstance(value, str):
                if not value:
                    raise PydanticCustomError(
                        "string_too_short", "String should have at least 1 character"
                    )
                if len(value) > MAX_PHRASE:
                    raise PydanticCustomError(
                        "string_too_long", f"String should have at most {MAX_PHRASE} characters"
                    )
                return cls(value)
            if isinstance(value, dict):
                spec: PhraseOptions = inner(value)
                return cls(spec.phrase, spec.exact, spec.case == "sensitive")
            raise PydanticCustomError(
                "phrase_type",
                "must be a phrase: text, or a mapping like {phrase: strikes, exact: true}",
            )

        return core_schema.no_info_wrap_validator_function(
            validate,
            options,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda p: p.to_yaml() if isinstance(p, Phrase) else p
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "anyOf": [
                {"type": "string", "minLength": 1, "maxLength": MAX_PHRASE},
                handler(schema),
            ],
            "description": "A phrase, stemmed (invade: invaded, invading, ...); or a mapping "
            "{phrase: ..., exact: true} for these word forms only, {phrase: US, case: "
            "sensitive} for these capitals only.",
        }
