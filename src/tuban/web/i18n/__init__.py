"""The UI's message catalogue (界面文字) and locale formatting: zh-CN default, English switchable."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

__all__ = ["LANGS", "MU_PER_HA", "Catalogue", "load_catalogue"]

LANGS = ("zh", "en")
#: 1 hectare = 15 亩 (市亩)
MU_PER_HA = 15.0


@dataclass(frozen=True)
class Catalogue:
    messages: dict[str, dict[str, str]]

    def t(self, lang: str, key: str) -> str:
        table = self.messages.get(lang) or self.messages["zh"]
        return table.get(key) or self.messages["zh"].get(key) or key

    def for_lang(self, lang: str) -> dict[str, str]:
        return {**self.messages["zh"], **self.messages.get(lang, {})}

    @staticmethod
    def number(lang: str, value: float | int | None, digits: int = 2) -> str:
        if value is None:
            return ""
        return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"

    def area(self, lang: str, ha: float | None, *, unit: str = "ha") -> str:
        if ha is None:
            return ""
        if unit == "mu":
            return f"{self.number(lang, ha * MU_PER_HA, 1)} {self.t(lang, 'unit.mu')}"
        return f"{self.number(lang, ha, 2)} {self.t(lang, 'unit.ha')}"

    @staticmethod
    def date(lang: str, value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value)
            except ValueError:
                return value
        if isinstance(value, dt.datetime):
            local = value.astimezone(dt.timezone(dt.timedelta(hours=8)))  # China Standard Time
            return local.strftime("%Y年%m月%d日 %H:%M" if lang == "zh" else "%Y-%m-%d %H:%M")
        return value.strftime("%Y年%m月%d日" if lang == "zh" else "%Y-%m-%d")


def load_catalogue() -> Catalogue:
    text = resources.files("tuban.web").joinpath("i18n/messages.json").read_text("utf-8")
    data = json.loads(text)
    missing = set(data["zh"]) ^ set(data["en"])
    if missing:
        raise ValueError(f"messages.json: keys not in both languages: {sorted(missing)}")
    return Catalogue(messages=data)
