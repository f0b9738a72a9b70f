"""conf/vitals.yaml as a terminology artefact (pure Python, no Spark).

Every LOINC code in the catalogue is well formed and carries a valid check digit, says where
it comes from, appears once, and maps to the same unit, limits and conversions as every other
code of its canonical vital; every code the FHIR R4 vital-signs StructureDefinitions fix
(../shared/data/fhir-r4-examples) is either a vital or a panel."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from tests.helpers import SHARED_DATA
from vitalwatch.fhir.catalogue import Catalogue, parse_catalogue

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE_FILE = ROOT / "conf" / "vitals.yaml"
EXAMPLES = SHARED_DATA / "fhir-r4-examples"
LOINC = "http://loinc.org"
LOINC_SYNTAX = re.compile(r"^(\d{1,7})-(\d)$")

CANONICAL_NAMES = {
    "systolic_bp", "diastolic_bp", "mean_arterial_pressure", "heart_rate", "respiratory_rate",
    "spo2", "body_temperature", "body_height", "head_circumference", "body_weight", "bmi",
}


def loinc_check_digit(body: str) -> int:
    """The LOINC mod-10 check digit of the part before the hyphen (Regenstrief's algorithm).

    Number the digits from the right, starting at 1; the odd-position digits, read as one
    number, are doubled; the even-position digits are written in front of that product; the
    check digit takes the digit sum of the result up to the next multiple of ten."""
    if not body.isdigit():
        raise ValueError(f"not a LOINC code body: {body!r}")
    from_right = body[::-1]
    odd = from_right[0::2][::-1]
    even = from_right[1::2][::-1]
    digits = even + str(int(odd) * 2)
    return -sum(int(d) for d in digits) % 10


def is_valid_loinc(code: str) -> bool:
    m = LOINC_SYNTAX.match(code)
    return m is not None and loinc_check_digit(m.group(1)) == int(m.group(2))


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return parse_catalogue(CATALOGUE_FILE.read_text())


# -- the check-digit algorithm itself -------------------------------------------------------

@pytest.mark.parametrize("code", [
    "8480-6", "8462-4", "8867-4", "59408-5", "2708-6", "8310-5", "85354-9", "29463-7",
    "85353-1", "9279-1", "8302-2", "9843-4", "39156-5", "8478-0",
    "12345-5",  # Regenstrief's worked example
])
def test_check_digit_of_known_codes(code):
    assert is_valid_loinc(code)


@pytest.mark.parametrize("code", [
    "8480-5", "8462-3", "59408-4", "8460-3",  # wrong check digit (8460-3 is a real-world typo of 8460-8)
    "8480", "8480-66", "12345678-9", "a480-6", " 8480-6", "8480-6 ",
])
def test_malformed_or_mistyped_codes_are_rejected(code):
    assert not is_valid_loinc(code)


def test_check_digit_matches_luhn():
    """Regenstrief's 'double the odd-position number' equals Luhn's per-digit doubling."""
    def luhn(body: str) -> int:
        total = 0
        for i, ch in enumerate(reversed(body)):
            d = int(ch) * (2 if i % 2 == 0 else 1)
            total += d - 9 if d > 9 else d
        return -total % 10

    for n in range(1, 200_000, 7):
        assert loinc_check_digit(str(n)) == luhn(str(n)), n


# -- the catalogue ------------------------------------------------------------------------

def test_every_code_is_a_valid_loinc(catalogue):
    bad = [c for c in [*catalogue.vitals, *catalogue.panels] if not is_valid_loinc(c)]
    assert bad == []


def test_every_entry_says_where_it_comes_from(catalogue):
    missing = [c for c, v in catalogue.vitals.items() if not v.source.strip()]
    assert missing == []


def test_no_code_is_listed_twice():
    """yaml.safe_load keeps the last of two equal keys silently; read the raw mapping."""
    root = yaml.compose(CATALOGUE_FILE.read_text())
    sections = {k.value: v for k, v in root.value}
    keys = [k.value for k, _ in sections["vitals"].value]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)
    panels = [n.value for n in sections["panels"].value]
    assert len(panels) == len(set(panels))


def test_panels_and_vitals_are_disjoint(catalogue):
    assert set(catalogue.panels) & set(catalogue.vitals) == set()


def test_canonical_names_are_unchanged(catalogue):
    assert {v.name for v in catalogue.vitals.values()} == CANONICAL_NAMES


def test_codes_of_one_vital_share_unit_limits_and_conversions(catalogue):
    by_name: dict[str, list[str]] = defaultdict(list)
    for code, v in catalogue.vitals.items():
        by_name[v.name].append(code)
    for name, codes in by_name.items():
        defs = {c: catalogue.vitals[c] for c in codes}
        shapes = {(d.unit, d.min, d.max, tuple(sorted((u, cv.factor, cv.offset) for u, cv in d.convert.items())))
                  for d in defs.values()}
        assert len(shapes) == 1, f"{name}: {codes} disagree: {shapes}"


def test_limits_are_ordered_and_units_are_not_converted_to_themselves(catalogue):
    for code, v in catalogue.vitals.items():
        assert v.min < v.max, code
        assert v.unit not in v.convert, code


def test_bp_pair_codes_are_vitals(catalogue):
    assert catalogue.vitals[catalogue.bp_pair.systolic].name == "systolic_bp"
    assert catalogue.vitals[catalogue.bp_pair.diastolic].name == "diastolic_bp"


# -- the FHIR R4 vital-signs profiles -----------------------------------------------------

def _profile_fixed_loinc_codes(sd: dict) -> set[str]:
    """LOINC codes a StructureDefinition fixes: pattern/fixed CodeableConcepts and Codings
    with system loinc, and fixedCode/patternCode elements whose sibling .system is loinc."""
    elements = [*sd.get("snapshot", {}).get("element", []), *sd.get("differential", {}).get("element", [])]
    by_id = {e["id"]: e for e in elements if "id" in e}
    codes: set[str] = set()

    def from_codings(value: dict) -> None:
        for coding in value.get("coding", [value]):
            if coding.get("system") == LOINC and "code" in coding:
                codes.add(coding["code"])

    for e in elements:
        for key, value in e.items():
            if not key.startswith(("fixed", "pattern")):
                continue
            if isinstance(value, dict):
                from_codings(value)
            elif key in ("fixedCode", "patternCode") and e["id"].endswith(".code"):
                system = by_id.get(e["id"][: -len(".code")] + ".system", {})
                if LOINC in (system.get("fixedUri"), system.get("patternUri")):
                    codes.add(value)
    return codes


def _vital_sign_profiles() -> dict[str, dict]:
    out = {}
    for path in sorted(EXAMPLES.glob("StructureDefinition-*.json")):
        sd = json.loads(path.read_text())
        base = sd.get("baseDefinition", "")
        if sd.get("type") == "Observation" and (
                base.endswith("/vitalsigns") or sd.get("url", "").endswith("/vitalsigns")):
            out[path.stem] = sd
    return out


def test_the_r4_vital_sign_profiles_are_there():
    profiles = _vital_sign_profiles()
    assert {"StructureDefinition-vitalsigns", "StructureDefinition-bp",
            "StructureDefinition-heartrate", "StructureDefinition-bodytemp"} <= set(profiles)


def test_profile_codes_are_extracted_as_expected():
    fixed = {name: _profile_fixed_loinc_codes(sd) for name, sd in _vital_sign_profiles().items()}
    assert fixed["StructureDefinition-bp"] == {"85354-9", "8480-6", "8462-4"}
    assert fixed["StructureDefinition-vitalspanel"] == {"85353-1"}
    assert fixed["StructureDefinition-vitalsigns"] == set()


def test_every_profile_fixed_code_is_a_vital_or_a_panel(catalogue):
    known = set(catalogue.vitals) | set(catalogue.panels)
    fixed = {code: name for name, sd in _vital_sign_profiles().items()
             for code in _profile_fixed_loinc_codes(sd)}
    assert fixed, "no profile-fixed LOINC codes found"
    missing = {code: name for code, name in fixed.items() if code not in known}
    assert missing == {}
    for code in fixed:
        assert is_valid_loinc(code), code
