"""Secrets taken out of what callers send before anything is stored, and personal data out of what travels.

Record, report_outcome, edit, recall and import pass what they were sent through a `Scrubber` right
after their input checks (inputs.py): every secret becomes a typed placeholder and every
`<private>` span a marker (memp_mcp.redact), and the scrubber lists what it replaced and where,
never the value. A procedure's title and when-to-use, which travel with it into other sessions'
context and into exported skills, also lose e-mail addresses, phone numbers and street addresses.
"""

from __future__ import annotations

from collections.abc import Sequence

from memp_mcp.models import ProcedureDraft, Step
from memp_mcp.redact import redact, redact_personal


class Scrubber:
    """Redacts texts and remembers, per field, the kind of each thing it replaced."""

    def __init__(self) -> None:
        self._found: dict[tuple[str, str], None] = {}
        # Secret values found so far in this input (memory only): taken out wherever they recur in
        # it, such as a token set by a command and echoed bare in its output.
        self._values: dict[str, str] = {}

    @property
    def found(self) -> list[str]:
        """What was replaced, where ("steps[2].action: github-token"): each field and kind once, in the
        order met."""
        return [f"{field}: {kind}" for field, kind in self._found]

    def _note(self, field: str, kinds: Sequence[str]) -> None:
        for kind in kinds:
            self._found[field, kind] = None

    def text(self, field: str, value: str) -> str:
        redacted = redact(value, self._values)
        self._values.update(redacted.values)
        self._note(field, redacted.kinds)
        return redacted.text

    def optional(self, field: str, value: str | None) -> str | None:
        return None if value is None else self.text(field, value)

    def texts(self, field: str, values: Sequence[str]) -> list[str]:
        return [self.text(f"{field}[{index}]", value) for index, value in enumerate(values)]

    def steps(self, field: str, steps: Sequence[Step]) -> list[Step]:
        scrubbed = []
        for index, step in enumerate(steps):
            where = f"{field}[{index}]"
            changes = {
                name: new
                for name in ("action", "observation", "thought")
                if (old := getattr(step, name)) is not None and (new := self.text(f"{where}.{name}", old)) != old
            }
            scrubbed.append(step.model_copy(update=changes) if changes else step)
        return scrubbed

    def draft(self, field: str, draft: ProcedureDraft) -> ProcedureDraft:
        return draft.model_copy(
            update={
                "title": self.shared(f"{field}.title", draft.title),
                "when_to_use": None
                if draft.when_to_use is None
                else self.shared(f"{field}.when_to_use", draft.when_to_use),
                "steps": self.texts(f"{field}.steps", draft.steps),
                "pitfalls": self.texts(f"{field}.pitfalls", draft.pitfalls),
            }
        )

    def shared(self, field: str, value: str) -> str:
        """A text that travels with a procedure: without secrets, nor e-mail, phone or street addresses."""
        personal = redact_personal(self.text(field, value))
        self._note(field, personal.kinds)
        return personal.text
