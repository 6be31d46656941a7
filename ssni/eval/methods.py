"""The defence methods an evaluation compares, as a value parsed once from its name.

"constant"     DBP at the host's constant t* (the baseline)
"constant@t"   DBP at a constant t for every sample (a point of a t sweep; single-stage hosts)
"ssni-n"       SSNI with sigmoid reweighting (spec §4)
"ssni-l"       SSNI with linear reweighting
"""

from __future__ import annotations

from dataclasses import dataclass

from ssni.errors import SSNIUserError

__all__ = ["Method", "METHOD_NAMES", "DEFAULT_METHODS"]

METHOD_NAMES = ("constant", "ssni-n", "ssni-l")
REWEIGHT = {"ssni-n": "sigmoid", "ssni-l": "linear"}


@dataclass(frozen=True)
class Method:
    """kind: "constant", "ssni-n" or "ssni-l"; t: the constant t of "constant@t" (None: the host's t*)."""

    kind: str
    t: int | None = None

    @classmethod
    def parse(cls, name: str) -> Method:
        """The method called `name`; anything else is a user error listing the choices."""
        if name in METHOD_NAMES:
            return cls(name)
        if isinstance(name, str) and name.startswith("constant@"):
            digits = name.split("@", 1)[1]
            if digits.isdigit() and 1 <= int(digits) <= 1000:
                return cls("constant", int(digits))
        raise SSNIUserError(f"unknown method {name!r}; use {', '.join(METHOD_NAMES)} or constant@<t> with t in 1..1000")

    @property
    def is_ssni(self) -> bool:
        return self.kind in REWEIGHT

    @property
    def reweight(self) -> str:
        """SSNI's reweighting ("sigmoid" for SSNI-N, "linear" for SSNI-L)."""
        return REWEIGHT[self.kind]

    def __str__(self) -> str:
        return self.kind if self.t is None else f"{self.kind}@{self.t}"


DEFAULT_METHODS = tuple(Method(name) for name in METHOD_NAMES)
