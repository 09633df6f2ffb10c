"""What every configuration section shares: strictness (unknown keys are errors)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

MIB = 1 << 20


class StrictSection(BaseModel):
    """A configuration section: unknown keys are an error, never ignored; defaults validated."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), validate_default=True)
