"""The vital-signs catalogue (conf/vitals.yaml): LOINC → canonical name, unit, conversions,
physiological limits. Loaded once; the parser turns it into Spark map literals."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel

from vitalwatch.config import conf_dir


class Conversion(BaseModel):
    factor: float
    offset: float = 0.0


class VitalDef(BaseModel):
    name: str
    unit: str
    min: float
    max: float
    convert: dict[str, Conversion] = {}
    source: str = ""  # where the code's meaning comes from (profile, LOINC part), for reviewers


class BpPair(BaseModel):
    systolic: str
    diastolic: str


class CatalogueFile(BaseModel):
    vitals: dict[str, VitalDef]
    panels: list[str]
    bp_pair: BpPair


@dataclass(frozen=True)
class Catalogue:
    vitals: dict[str, VitalDef]
    panels: tuple[str, ...]
    bp_pair: BpPair

    @property
    def bp_names(self) -> tuple[str, str]:
        """The systolic and diastolic vitals' names: the pair checked for plausibility."""
        return self.vitals[self.bp_pair.systolic].name, self.vitals[self.bp_pair.diastolic].name


def parse_catalogue(text: str) -> Catalogue:
    f = CatalogueFile.model_validate(yaml.safe_load(text))
    return Catalogue(f.vitals, tuple(f.panels), f.bp_pair)


@lru_cache(maxsize=4)
def load_catalogue(path: Path | None = None) -> Catalogue:
    return parse_catalogue((path or conf_dir() / "vitals.yaml").read_text())
