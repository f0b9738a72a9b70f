"""The API's pure parts: tokens, cursors, pseudonyms and the FHIR resources it builds."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import jwt
import pandas as pd
import pytest

from vitalwatch.api import fhir, paging, tokens
from vitalwatch.api.context import Caller
from vitalwatch.api.problems import Problem
from vitalwatch.config import Settings

KEY = b"k" * 48


def test_a_token_round_trips_and_every_forgery_is_refused() -> None:
    cfg = Settings().api
    tok, life = tokens.issue(KEY, cfg, "ada", "clinician")
    c = tokens.verify(KEY, cfg, tok)
    assert (c.username, c.role, life) == ("ada", "clinician", int(cfg.token_minutes * 60))
    old, _ = tokens.issue(KEY, cfg, "ada", "clinician", now=datetime.now(UTC) - timedelta(minutes=cfg.token_minutes + 1))
    with pytest.raises(tokens.TokenRefused, match="expired"):
        tokens.verify(KEY, cfg, old)
    claims = jwt.decode(tok, KEY, algorithms=["HS256"], audience=cfg.audience)
    for forged in (jwt.encode(claims, b"x" * 48, algorithm="HS256"),                 # another key
                   jwt.encode(claims, None, algorithm="none"),                        # unsigned
                   jwt.encode({**claims, "aud": "someone-else"}, KEY, algorithm="HS256"),
                   jwt.encode({k: v for k, v in claims.items() if k != "role"}, KEY, algorithm="HS256"),
                   tok[:-2] + ("AA" if not tok.endswith("AA") else "BB")):
        with pytest.raises(tokens.TokenRefused):
            tokens.verify(KEY, cfg, forged)


def test_a_short_token_key_is_refused(monkeypatch, tmp_path) -> None:
    s = Settings()
    monkeypatch.setenv(tokens.KEY_ENV, "too-short")
    with pytest.raises(ValueError, match="at least 32 bytes"):
        tokens.signing_key(s)
    monkeypatch.delenv(tokens.KEY_ENV)
    s = s.with_updates(infra={"work_dir": str(tmp_path)})
    key = tokens.signing_key(s)
    f = tmp_path / "api" / "token.key"
    assert len(key) >= 32 and f.stat().st_mode & 0o777 == 0o600 and tokens.signing_key(s) == key


def test_a_cursor_belongs_to_its_query() -> None:
    q = {"ward": ["ward-A"], "level": None}
    cur = paging.encode_cursor(40, q)
    assert paging.decode_cursor(cur, q) == 40 and paging.decode_cursor(None, q) == 0
    for bad, query in ((cur, {"ward": ["ward-B"], "level": None}), ("%%%", q), ("e30", q)):
        with pytest.raises(Problem) as e:
            paging.decode_cursor(bad, query)
        assert e.value.status == 400
    pinned = paging.encode_cursor(10, q, r=["2026-12-01T00:00:00+00:00", "2026-12-02T00:00:00+00:00"])
    start, end = paging.pinned_range(paging.cursor_state(pinned, q))
    assert (end - start) == pd.Timedelta(hours=24) and paging.decode_cursor(pinned, q) == 10
    with pytest.raises(Problem):  # a forged pinned time is refused, not a 500
        paging.pinned_range(paging.cursor_state(paging.encode_cursor(0, q, r=["x", "y"]), q))
    df = pd.DataFrame({"x": range(5)})
    p1 = paging.page(df, 2, None, q, paging.records)
    p3 = paging.page(df, 2, paging.encode_cursor(4, q), q, paging.records)
    assert (p1.items, p1.total, p3.items, p3.next_cursor) == ([{"x": 0}, {"x": 1}], 5, [{"x": 4}], None)


class _Ctx:
    """The Context's keyed digests without its MongoDB and secrets store."""

    def __init__(self) -> None:
        from vitalwatch.api.context import Context

        self.s = Settings()
        self.pseudonym_key = b"p" * 48
        self._maps: dict = {}
        for name in ("digest", "pseudonym", "lookup"):
            setattr(self, name, getattr(Context, name).__get__(self))


ROW = {"patient_id": "p-00001", "observation_id": "obs-1", "effective_time": "2026-12-01T10:15:00.000Z",
       "risk_1h": 0.12, "risk_6h": 0.41, "risk_24h": 0.55, "level": "HIGH", "crisis_now": False,
       "model_name": "vitalwatch-crisis-risk", "model_version": "3"}


def test_a_risk_assessment_is_valid_fhir_and_the_analysts_is_pseudonymous() -> None:
    from fhir.resources.riskassessment import RiskAssessment

    ctx = _Ctx()
    horizons = ctx.s.clinical.horizons_hours
    clinician = Caller("ada", "clinician", True, None, ctx)  # type: ignore[arg-type]
    analyst = Caller("cy", "analyst", False, None, ctx)  # type: ignore[arg-type]
    ra = RiskAssessment.model_validate(fhir.risk_assessment(clinician, ROW, horizons))
    assert ra.subject.reference == "Patient/p-00001" and ra.basis[0].reference == "Observation/obs-1"
    assert [(float(p.probabilityDecimal), float(p.whenRange.high.value)) for p in ra.prediction] == [
        (0.12, 1), (0.41, 6), (0.55, 24)]
    assert ra.method.coding[0].version == "3" and ra.prediction[0].qualitativeRisk.coding[0].code == "high"
    assert re.fullmatch(r"\d{8}-[0-9a-f]{16}-[0-9a-f]{16}", ra.id) and ra.id.startswith("20261201-")
    an = fhir.risk_assessment(analyst, ROW, horizons)
    RiskAssessment.model_validate(an)
    assert "basis" not in an and an["subject"]["reference"].startswith("Patient/anon-")
    assert "p-00001" not in str(an) and "obs-1" not in str(an)
    assert analyst.patient_ref("p-00001") == analyst.patient_ref("p-00001") != analyst.patient_ref("p-00002")
    assert analyst.patient_ref("p-00001") != analyst.alert_ref("p-00001")  # kinds never collide
    assert analyst.patient_id(analyst.patient_ref("p-00002"), ["p-00001", "p-00002"]) == "p-00002"
    assert analyst.patient_id("p-00002", ["p-00002"]) is None and clinician.patient_id("p-00002", ["p-00002"]) == "p-00002"
    # the id is keyed: without the key, hashing candidate ids does not find the patient
    import hashlib

    assert hashlib.sha256(b"p-00001").hexdigest()[:16] not in ra.id


def test_a_flag_is_valid_fhir() -> None:
    from fhir.resources.flag import Flag

    ctx = _Ctx()
    c = Caller("ada", "clinician", True, None, ctx)  # type: ignore[arg-type]
    f = Flag.model_validate(fhir.flag(c, {"alert_id": "a-1", "patient_id": "p-1", "level": "CRITICAL",
                                          "reasons": ["crisis_now"], "raised_time": "2026-12-01T10:15:00Z"}))
    assert f.status == "active" and "CRITICAL" in f.code.text and f.subject.reference == "Patient/p-1"
