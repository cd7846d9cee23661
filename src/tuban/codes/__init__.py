"""Code lists as data (domain.md §3–5).

The lists live in ``data/codelists.json`` with a version; builds of the national
platform differ between years, so nothing outside this module spells a code list.

>>> from tuban.codes import codelists
>>> cl = codelists()
>>> cl.label("BYD", "合规", "en")
'Compliant'
>>> cl.is_valid("QDTYPE", "新增")
True
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Literal

from tuban.errors import FieldError

Lang = Literal["zh", "en"]

__all__ = ["CodeItem", "CodeList", "CodeLists", "codelists"]


@dataclass(frozen=True, slots=True)
class CodeItem:
    code: str
    zh: str
    en: str


@dataclass(frozen=True, slots=True)
class CodeList:
    name: str
    label: str
    source: str
    items: tuple[CodeItem, ...]
    _by_code: dict[str, CodeItem] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_code.update({i.code: i for i in self.items})

    def codes(self) -> list[str]:
        return [i.code for i in self.items]

    def get(self, code: str) -> CodeItem | None:
        return self._by_code.get(code)


@dataclass(frozen=True, slots=True)
class CodeLists:
    version: str
    lists: dict[str, CodeList]

    def __getitem__(self, name: str) -> CodeList:
        try:
            return self.lists[name]
        except KeyError:
            raise FieldError(f"unknown code list {name!r}; known: {', '.join(sorted(self.lists))}") from None

    def is_valid(self, name: str, code: str) -> bool:
        return self[name].get(code) is not None

    def validate(self, name: str, code: str | None, *, context: str = "") -> str | None:
        """Return *code* if valid (``None``/empty passes), else raise :class:`FieldError`."""
        if code is None or code == "":
            return None
        if not self.is_valid(name, code):
            where = f" in {context}" if context else ""
            allowed = "、".join(self[name].codes()[:12])
            raise FieldError(
                f"{name}={code!r}{where} is not in code list {name} v{self.version}",
                hint=f"use one of: {allowed}",
            )
        return code

    def label(self, name: str, code: str, lang: Lang = "zh") -> str:
        item = self[name].get(code)
        if item is None:
            return code
        return item.zh if lang == "zh" else item.en


def _load(text: str) -> CodeLists:
    raw = json.loads(text)
    lists = {}
    for entry in raw["lists"]:
        items = tuple(CodeItem(i["code"], i["zh"], i["en"]) for i in entry["items"])
        lists[entry["name"]] = CodeList(entry["name"], entry["label"], entry.get("source", ""), items)
    return CodeLists(version=str(raw["version"]), lists=lists)


@cache
def codelists() -> CodeLists:
    """The packaged code lists (cached)."""
    text = resources.files("tuban.codes").joinpath("data/codelists.json").read_text("utf-8")
    return _load(text)
