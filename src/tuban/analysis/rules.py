"""Versioned compliance rules (合规性判定规则) loaded from a TOML file.

The thresholds of domain.md §4 live in ``data/rules-v1.toml``; nothing else in
:mod:`tuban.analysis` spells a threshold.

>>> r = load_rules()
>>> r.version, r.site_change_radius_m
('1', 500.0)
>>> round(r.tolerance_ha(2.0), 6)
0.1
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from tuban.errors import ConfigError

__all__ = ["DEFAULT_RULES_FILE", "RuleSet", "load_rules"]

DEFAULT_RULES_FILE = "rules-v1.toml"


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Thresholds of rules R1–R5 and of the change type (QDTYPE)."""

    version: str
    tolerance_min_ha: float = 0.01
    tolerance_share: float = 0.05
    site_change_radius_m: float = 500.0
    plan_threshold_ha: float = 0.5
    overlap_min_m2: float = 0.01
    counting_vec_types: tuple[str, ...] = ("防治责任范围",)
    expand_share: float = 0.10
    shrink_share: float = 0.10
    area_eps_ha: float = 1e-9
    share_eps: float = 1e-9
    distance_eps_m: float = 1e-6
    rank_decimals: int = 4
    nearest_search_m: float = 1000.0
    source: str = DEFAULT_RULES_FILE

    def tolerance_ha(self, area_ha: float) -> float:
        """R1 tolerance for a patch of *area_ha*: ``max(tolerance_min_ha, tolerance_share * area_ha)``."""
        return max(self.tolerance_min_ha, self.tolerance_share * area_ha)


def _number(section: dict[str, object], key: str, default: float, source: str) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"rules file {source}: {key}={value!r} must be a non-negative number")
    return float(value)


def load_rules(path: str | Path | None = None) -> RuleSet:
    """Read a rules file (default: the packaged ``rules-v1.toml``).

    Parameters
    ----------
    path
        A TOML file with ``version`` and the ``[compliance]``, ``[change_type]`` and
        ``[comparison]`` tables; missing keys take the v1 defaults.

    Raises
    ------
    ConfigError
        The file is not TOML, has no ``version``, or holds a negative/non-numeric threshold.
    """
    if path is None:
        text = resources.files("tuban.analysis").joinpath("data", DEFAULT_RULES_FILE).read_text("utf-8")
        source = DEFAULT_RULES_FILE
    else:
        source = str(path)
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read rules file {source}: {exc.strerror}") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"rules file {source} is not valid TOML: {exc}") from exc
    if "version" not in raw:
        raise ConfigError(f"rules file {source} has no 'version'", hint="add version = \"…\" at the top")
    comp = raw.get("compliance", {})
    chg = raw.get("change_type", {})
    cmp_ = raw.get("comparison", {})
    vec_types = comp.get("counting_vec_types", ["防治责任范围"])
    if not isinstance(vec_types, list) or not all(isinstance(v, str) for v in vec_types):
        raise ConfigError(f"rules file {source}: counting_vec_types must be a list of strings")
    return RuleSet(
        version=str(raw["version"]),
        tolerance_min_ha=_number(comp, "tolerance_min_ha", 0.01, source),
        tolerance_share=_number(comp, "tolerance_share", 0.05, source),
        site_change_radius_m=_number(comp, "site_change_radius_m", 500.0, source),
        plan_threshold_ha=_number(comp, "plan_threshold_ha", 0.5, source),
        overlap_min_m2=_number(comp, "overlap_min_m2", 0.01, source),
        counting_vec_types=tuple(vec_types),
        expand_share=_number(chg, "expand_share", 0.10, source),
        shrink_share=_number(chg, "shrink_share", 0.10, source),
        area_eps_ha=_number(cmp_, "area_eps_ha", 1e-9, source),
        share_eps=_number(cmp_, "share_eps", 1e-9, source),
        distance_eps_m=_number(cmp_, "distance_eps_m", 1e-6, source),
        rank_decimals=int(_number(cmp_, "rank_decimals", 4, source)),
        nearest_search_m=_number(raw.get("report", {}), "nearest_search_m", 1000.0, source),
        source=source,
    )
