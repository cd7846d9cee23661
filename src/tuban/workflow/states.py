"""State machines of a patch in a round and of an enforcement case (domain.md §6).

Patch::

    detected ─issue─▶ issued ─review─▶ office_reviewed ─field─▶ field_verified
                        │                  │   ▲                     │
                        └──reject──▶ rejected  └──────determine──────┴─▶ determined ─submit─▶ reported
    reported ─return─▶ returned ─(review / reject / determine again)
    split / merge: the parents become ``superseded``; the children start where the parents were.

Case: investigating ─▶ rectifying (deadline) ─▶ closed; investigating ─▶ closed (no rectification needed).
"""

from __future__ import annotations

from tuban.codes import codelists
from tuban.errors import ConflictError

__all__ = [
    "CASE_TRANSITIONS",
    "EDITABLE_STATES",
    "PATCH_STATES",
    "PATCH_TRANSITIONS",
    "VIOLATIONS",
    "check_case_transition",
    "check_patch_transition",
]

#: the patch states are the PATCH_STATE code list (domain.md §6), data not literals;
#: ``superseded`` marks a parent of a split or merge (kept for lineage, out of the workflow)
PATCH_STATES: tuple[str, ...] = tuple(codelists()["PATCH_STATE"].codes())

#: action → (allowed source states, target state); ``None`` target = the state is kept
PATCH_TRANSITIONS: dict[str, tuple[frozenset[str], str | None]] = {
    "issue": (frozenset({"detected"}), "issued"),
    "edit": (frozenset({"issued", "office_reviewed", "field_verified", "determined", "returned"}), None),
    "office_review": (frozenset({"issued", "office_reviewed", "field_verified", "returned"}), "office_reviewed"),
    "field_verify": (frozenset({"issued", "office_reviewed", "field_verified", "returned"}), "field_verified"),
    "reject": (frozenset({"issued", "office_reviewed", "field_verified", "returned"}), "rejected"),
    "reopen": (frozenset({"rejected", "determined"}), "office_reviewed"),
    "determine": (frozenset({"issued", "office_reviewed", "field_verified", "returned", "determined"}), "determined"),
    "submit": (frozenset({"determined"}), "reported"),
    "accept": (frozenset({"reported", "rejected"}), None),
    "return": (frozenset({"reported", "rejected"}), "returned"),
    "split": (frozenset({"issued", "office_reviewed", "field_verified", "returned"}), "superseded"),
    "merge": (frozenset({"issued", "office_reviewed", "field_verified", "returned"}), "superseded"),
    "comment": (frozenset(PATCH_STATES) - {"superseded"}, None),
}

#: states a reviewer may still edit official fields in
EDITABLE_STATES = PATCH_TRANSITIONS["edit"][0]

#: determined BYD values that open an enforcement case (查处)
VIOLATIONS = frozenset({"未批先建", "超出防治责任范围", "建设地点变更", "未批先弃"})

CASE_TRANSITIONS: dict[str, frozenset[str]] = {
    "investigating": frozenset({"rectifying", "closed"}),
    "rectifying": frozenset({"closed"}),
    "closed": frozenset(),
}


def check_patch_transition(action: str, state: str, *, patch_label: str = "") -> str:
    """The state after *action* from *state*; :class:`ConflictError` when not allowed."""
    try:
        sources, target = PATCH_TRANSITIONS[action]
    except KeyError:
        raise ConflictError(f"unknown patch action {action!r}") from None
    if state not in sources:
        what = f"patch {patch_label} " if patch_label else "a patch "
        raise ConflictError(
            f"cannot {action} {what}in state {state!r}",
            hint=f"{action} is allowed from: {', '.join(sorted(sources))}",
        )
    return target or state


def check_case_transition(state: str, target: str, *, case_id: int | None = None) -> None:
    allowed = CASE_TRANSITIONS.get(state, frozenset())
    if target not in allowed:
        raise ConflictError(
            f"case {case_id if case_id is not None else ''} cannot go from {state!r} to {target!r}".replace("  ", " "),
            hint=f"allowed next states: {', '.join(sorted(allowed)) or 'none (closed)'}",
        )
