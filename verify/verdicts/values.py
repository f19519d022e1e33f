"""The values a verdict can take, typed (the merge's rules say when each applies: ``verify.verdicts.merge.RULES``).

A *vote* is one frame's verdict on one claim; a *verdict* is what a claim's (or a video's) pictures roll up to.
Both are strings too (``Vote.SUPPORTS == "supports"``), so JSON, templates and the report keep their words. A lead's
decision is never a value of its own: it is the value the lead chose, with who decided it in its own field
(``ClaimVote.adjudicated_by``, ``ClaimVerdict.decided_by``) and the reviewers' result beside it (``vote``).
"""

from __future__ import annotations

from enum import Enum


class _Value(str, Enum):
    """A string-valued enum that prints, formats, hashes and compares as its value."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    __hash__ = str.__hash__


class Vote(_Value):
    """One frame's verdict on one claim."""

    SUPPORTS = "supports"
    CONTRADICTS = "contradicts"
    INCONCLUSIVE = "inconclusive"  # the reviewers agreed they can't tell
    DISPUTED = "disputed"  # no answer held by more than half of the reviews
    PENDING = "pending"  # fewer reviews than the quorum
    UNREVIEWED = "unreviewed"

    @property
    def decided(self) -> bool:
        """An outcome (supports, contradicts, inconclusive or disputed), not a frame still waiting for reviews."""
        return self not in (Vote.PENDING, Vote.UNREVIEWED)


class Verdict(_Value):
    """What a set of pictures (a claim's, a video's) rolls up to on one claim."""

    SUPPORTED = "supported"
    CONTRADICTED = "contradicted"
    DISPUTED = "disputed"
    INCONCLUSIVE = "inconclusive"
    PENDING = "pending"
    UNREVIEWED = "unreviewed"
