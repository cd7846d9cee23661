"""Office review (内业复核): fields, decisions, rejection, project links, split/merge, comments.

Every write claims the patch's version with one conditional ``UPDATE … WHERE version = ?``
(compare-and-swap): of two reviewers both based on version 3, exactly one succeeds and
the other gets :class:`VersionConflictError` carrying both versions, so nothing is lost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import shapely
from sqlalchemy import select, update

from tuban.codes import codelists
from tuban.errors import ConflictError, FieldError, GeometryError, NotFoundError, UsageError
from tuban.fields import PATCH_FIELDS
from tuban.store.models import Comment, Decision, Patch, PatchLineage, Project, Review
from tuban.store.store import Transaction, snapshot
from tuban.workflow.access import Actor, load_patch, patch_divisions
from tuban.workflow.states import check_patch_transition

__all__ = [
    "EDITABLE_FIELDS",
    "VersionConflictError",
    "add_comment",
    "edit_fields",
    "link_project",
    "merge_patches",
    "record_office_review",
    "reject_patch",
    "split_by_line",
    "split_patch",
    "validate_fields",
]

#: official fields a reviewer may edit (QDNM, XZQDM and areas are set by import/split/merge)
EDITABLE_FIELDS = ("QTYPE", "QDCS", "QDTYPE", "BYD", "ISREVIEW", "ISFOCUS", "ADDRESS", "PROBLEM", "PROPOSAL",
                   "MEMO", "SEROSION")
_VISIBLE = ("qdnm", "qtype", "qarea", "earea", "qdcs", "qdtype", "byd", "isreview", "isfocus", "xzqdm",
            "address", "problem", "proposal", "memo", "prid", "prnm", "serosion", "state", "version")


class VersionConflictError(ConflictError):
    """A stale save: the client's version is not the current one. Carries both versions."""

    code = "version-conflict"

    def __init__(self, patch_id: int, *, based_on: int, current: dict[str, Any],
                 submitted: Mapping[str, Any] | None) -> None:
        super().__init__(
            f"patch {patch_id} changed since you opened it: you edited version {based_on}, "
            f"the current version is {current.get('version')}",
            hint="compare both versions, then save again based on the current one",
        )
        self.patch_id = patch_id
        self.based_on = based_on
        self.current = current
        self.submitted = dict(submitted or {})

    def problem_extra(self) -> dict[str, Any]:
        return {"patch_id": self.patch_id, "based_on_version": self.based_on, "current": self.current,
                "submitted": self.submitted}


def public_fields(patch: Patch) -> dict[str, Any]:
    """The reviewer-visible columns of *patch* (no geometry)."""
    return {k: getattr(patch, k) for k in _VISIBLE}


def validate_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """Official field codes → column values, validated against :data:`PATCH_FIELDS` and code lists."""
    cl = codelists()
    out: dict[str, Any] = {}
    for name, value in values.items():
        code = name.upper()
        if code not in EDITABLE_FIELDS:
            raise FieldError(f"field {name!r} cannot be edited here",
                             hint=f"editable fields: {', '.join(EDITABLE_FIELDS)}")
        spec = PATCH_FIELDS[code]
        if value is not None and not isinstance(value, str):
            raise FieldError(f"{code} must be text, got {type(value).__name__}")
        value = None if value is None or value.strip() == "" else value.strip()
        if spec.codelist and value is not None:
            cl.validate(spec.codelist, value, context=f"field {code}")
        if spec.max_len and value is not None and len(value) > spec.max_len:
            raise FieldError(f"{code} is {len(value)} characters, the limit is {spec.max_len}",
                             hint="shorten the text")
        out[code.lower()] = value
    return out


def _claim(tx: Transaction, patch: Patch, based_on: int, submitted: Mapping[str, Any] | None) -> None:
    """Bump the version iff it is still *based_on* (atomic across sessions), else conflict."""
    if based_on is None or isinstance(based_on, bool) or not isinstance(based_on, int):
        raise UsageError("based_on_version (the version you edited) is required")
    res = tx.session.execute(
        update(Patch).where(Patch.id == patch.id, Patch.version == based_on)
        .values(version=Patch.version + 1).execution_options(synchronize_session=False)
    )
    if getattr(res, "rowcount", 0) != 1:
        tx.session.refresh(patch)
        raise VersionConflictError(patch.id, based_on=based_on, current=public_fields(patch),
                                   submitted=submitted)
    tx.session.refresh(patch)


def _audit(tx: Transaction, action: str, patch: Patch, before: Any, after: Any) -> None:
    lead = patch_divisions(patch)
    tx.audit(action, "patch", patch.id, before=before, after=after, round_id=patch.round_id,
             division_code=lead[0] if lead else None)


def edit_fields(tx: Transaction, actor: Actor, patch_id: int, values: Mapping[str, Any], *,
                based_on_version: int) -> Patch:
    """Change official fields of a patch (code-list validated; stale version → 409)."""
    patch = load_patch(tx.session, actor, patch_id, "patch.edit")
    check_patch_transition("edit", patch.state, patch_label=patch.qdnm)
    cols = validate_fields(values)
    _claim(tx, patch, based_on_version, values)
    before = {k: getattr(patch, k) for k in cols}
    for k, v in cols.items():
        setattr(patch, k, v)
    tx.session.flush()
    _audit(tx, "patch.edit", patch, {**before, "version": based_on_version},
           {**cols, "version": patch.version})
    return patch


def record_office_review(tx: Transaction, actor: Actor, patch_id: int, *, byd: str | None, note: str = "",
                         based_on_version: int, client_id: str | None = None) -> Review:
    """The office reviewer's conclusion (内业复核结论): the BYD they judge and a note."""
    patch = load_patch(tx.session, actor, patch_id, "patch.review")
    target = check_patch_transition("office_review", patch.state, patch_label=patch.qdnm)
    if byd:
        codelists().validate("BYD", byd, context="office review")
    _claim(tx, patch, based_on_version, {"byd": byd, "note": note})
    before = {"state": patch.state, "byd": patch.byd, "version": based_on_version}
    review = Review(patch_id=patch.id, kind="office", user_id=actor.user_id, client_id=client_id,
                    based_on_version=based_on_version, data={"outcome": "reviewed", "byd": byd, "note": note})
    tx.session.add(review)
    patch.state = target
    if byd:
        patch.byd = byd
    tx.session.flush()
    _audit(tx, "patch.office_review", patch, before,
           {"state": patch.state, "byd": patch.byd, "note": note, "version": patch.version})
    return review


def reject_patch(tx: Transaction, actor: Actor, patch_id: int, *, reason: str, note: str = "",
                 based_on_version: int) -> Review:
    """Reject as not a disturbance (误提), with a structured reason from REJECT_REASON."""
    patch = load_patch(tx.session, actor, patch_id, "patch.reject")
    target = check_patch_transition("reject", patch.state, patch_label=patch.qdnm)
    codelists().validate("REJECT_REASON", reason, context="rejection")
    if not reason:
        raise FieldError("a rejection needs a reason", hint="farming, seasonal, pseudo_change, existing_works, "
                                                           "duplicate")
    _claim(tx, patch, based_on_version, {"reason": reason, "note": note})
    before = {"state": patch.state, "version": based_on_version}
    review = Review(patch_id=patch.id, kind="office", user_id=actor.user_id, based_on_version=based_on_version,
                    data={"outcome": "rejected", "reason": reason, "note": note})
    tx.session.add(review)
    patch.state = target
    tx.session.flush()
    _audit(tx, "patch.reject", patch, before,
           {"state": patch.state, "reason": reason, "note": note, "version": patch.version})
    return review


def link_project(tx: Transaction, actor: Actor, patch_id: int, project_id: int | None, *,
                 based_on_version: int) -> Patch:
    """Link the patch to a project (PRID/PRNM), or unlink with ``project_id=None``."""
    patch = load_patch(tx.session, actor, patch_id, "patch.edit")
    check_patch_transition("edit", patch.state, patch_label=patch.qdnm)
    project = None
    if project_id is not None:
        project = tx.session.get(Project, project_id)
        if project is None:
            raise NotFoundError(f"no project with id {project_id}")
    _claim(tx, patch, based_on_version, {"project_id": project_id})
    before = {"prid": patch.prid, "prnm": patch.prnm, "version": based_on_version}
    patch.prid = None if project is None else (project.swc_p_id or str(project.id))
    patch.prnm = None if project is None else project.pro_name
    tx.session.flush()
    _audit(tx, "patch.link_project" if project else "patch.unlink_project", patch, before,
           {"prid": patch.prid, "prnm": patch.prnm, "version": patch.version})
    return patch


def add_comment(tx: Transaction, actor: Actor, patch_id: int, body: str) -> Comment:
    patch = load_patch(tx.session, actor, patch_id, "patch.review")
    check_patch_transition("comment", patch.state, patch_label=patch.qdnm)
    body = (body or "").strip()
    if not body or len(body) > 4000:
        raise FieldError(f"a comment must be 1–4000 characters (got {len(body)})")
    comment = Comment(patch_id=patch.id, user_id=actor.user_id, body=body)
    tx.session.add(comment)
    tx.session.flush()
    _audit(tx, "patch.comment", patch, None, {"comment_id": comment.id, "body": body})
    return comment


def _area_ha(geom: Any) -> float:
    """Area in hectares of a CGCS2000 lon/lat geometry (local equal-area projection)."""
    from pyproj import Geod

    geod = Geod(ellps="GRS80")
    area, _ = geod.geometry_area_perimeter(geom)
    return abs(area) / 10_000.0


def _child(parent: Patch, qdnm: str, geom: Any) -> Patch:
    cols = {k: getattr(parent, k) for k in (
        "round_id", "qtype", "qdcs", "qdtype", "byd", "isreview", "isfocus", "xzqdm", "address", "problem",
        "proposal", "memo", "prid", "prnm", "serosion", "lead_division_code", "detection", "source")}
    return Patch(**cols, qdnm=qdnm, geometry=geom, qarea=round(_area_ha(geom), 4), earea=None,
                 state=parent.state, version=1)


def split_patch(tx: Transaction, actor: Actor, patch_id: int, parts: Sequence[Any], *,
                based_on_version: int) -> list[Patch]:
    """Split a patch into *parts* (shapely polygons inside it); the parent is superseded."""
    patch = load_patch(tx.session, actor, patch_id, "patch.split_merge")
    check_patch_transition("split", patch.state, patch_label=patch.qdnm)
    if len(parts) < 2:
        raise GeometryError(f"a split needs at least 2 parts, got {len(parts)}")
    geoms = []
    for i, part in enumerate(parts):
        if not isinstance(part, shapely.Polygon | shapely.MultiPolygon) or part.is_empty or not part.is_valid:
            raise GeometryError(f"split part {i + 1} is not a valid, non-empty polygon")
        inside = shapely.intersection(part, patch.geometry)
        if inside.area < 0.99 * part.area:
            raise GeometryError(f"split part {i + 1} lies partly outside patch {patch.qdnm}",
                                hint="draw the parts inside the patch outline")
        geoms.append(part)
    _claim(tx, patch, based_on_version, {"parts": len(parts)})
    children = []
    existing = set(tx.session.scalars(select(Patch.qdnm).where(Patch.round_id == patch.round_id)))
    n = 0
    for geom in geoms:
        n += 1
        while f"{patch.qdnm}-{n}" in existing:
            n += 1
        child = _child(patch, f"{patch.qdnm}-{n}", geom)
        tx.session.add(child)
        children.append(child)
    before = {"state": patch.state, "version": based_on_version}
    patch.state = "superseded"
    tx.session.flush()
    for child in children:
        tx.session.add(PatchLineage(parent_id=patch.id, child_id=child.id, kind="split"))
        _audit(tx, "patch.create_by_split", child, None, snapshot(child, geometry=True))
    _audit(tx, "patch.split", patch, before, {"state": "superseded", "children": [c.id for c in children],
                                              "version": patch.version})
    return children


def split_by_line(tx: Transaction, actor: Actor, patch_id: int, line: Any, *,
                  based_on_version: int) -> list[Patch]:
    """Split a patch along *line* (a shapely LineString drawn across it, 分割线) into its pieces."""
    from shapely.ops import split as split_geometry

    patch = load_patch(tx.session, actor, patch_id, "patch.split_merge")
    if not isinstance(line, shapely.LineString) or line.is_empty or len(line.coords) < 2:
        raise GeometryError("a split line must be a LineString of at least 2 points")
    if patch.geometry is None:
        raise GeometryError(f"patch {patch.qdnm} has no outline to split")
    pieces = [g for g in split_geometry(patch.geometry, line).geoms
              if isinstance(g, shapely.Polygon) and g.area > 1e-12]
    if len(pieces) < 2:
        raise GeometryError(f"the line does not cut patch {patch.qdnm} into parts",
                            hint="draw the line across the whole patch, from outside to outside")
    return split_patch(tx, actor, patch_id, pieces, based_on_version=based_on_version)


def merge_patches(tx: Transaction, actor: Actor, patch_versions: Mapping[int, int]) -> Patch:
    """Merge patches ``{id: based_on_version}`` of one round and one lead county into a new one."""
    if len(patch_versions) < 2:
        raise UsageError(f"a merge needs at least 2 patches, got {len(patch_versions)}")
    patches = [load_patch(tx.session, actor, pid, "patch.split_merge") for pid in sorted(patch_versions)]
    rounds = {p.round_id for p in patches}
    leads = {p.lead_division_code for p in patches}
    if len(rounds) != 1 or len(leads) != 1:
        raise UsageError("merged patches must belong to one round and one lead county")
    for p in patches:
        check_patch_transition("merge", p.state, patch_label=p.qdnm)
    for p in patches:
        _claim(tx, p, patch_versions[p.id], {"merge": sorted(patch_versions)})
    geom = shapely.union_all([p.geometry for p in patches])
    first = patches[0]
    existing = set(tx.session.scalars(select(Patch.qdnm).where(Patch.round_id == first.round_id)))
    qdnm, n = f"{first.qdnm}-M", 1
    while qdnm in existing:
        n += 1
        qdnm = f"{first.qdnm}-M{n}"
    merged = _child(first, qdnm, geom)
    codes: list[str] = []
    for p in patches:
        codes += [c for c in patch_divisions(p) if c not in codes]
    merged.xzqdm = ",".join(codes)
    tx.session.add(merged)
    tx.session.flush()
    for p in patches:
        before = {"state": p.state, "version": patch_versions[p.id]}
        p.state = "superseded"
        tx.session.add(PatchLineage(parent_id=p.id, child_id=merged.id, kind="merge"))
        _audit(tx, "patch.merge", p, before, {"state": "superseded", "merged_into": merged.id,
                                             "version": p.version})
    tx.session.flush()
    _audit(tx, "patch.create_by_merge", merged, None, snapshot(merged, geometry=True))
    return merged


def latest_decisions(session: Any, patch_id: int) -> dict[str, Decision | None]:
    """The latest suspected and confirmed decisions of a patch."""
    out: dict[str, Decision | None] = {"suspected": None, "confirmed": None}
    for kind in out:
        out[kind] = session.scalar(
            select(Decision).where(Decision.patch_id == patch_id, Decision.kind == kind)
            .order_by(Decision.id.desc()).limit(1)
        )
    return out
