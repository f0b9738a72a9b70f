"""The scoring engine the streaming job runs per patient: incremental = batch, late and
duplicate readings, bounded state. A real (small) XGBoost scorer trained here on the
simulator's physiology (tests/unit/conftest.py) — the engine is pure, so no registry or Spark
is needed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vitalwatch.config import Settings
from vitalwatch.features.vector import BP_VITALS, feature_matrix, readings
from vitalwatch.models.datasets import synthetic_pandas
from vitalwatch.scoring.engine import ModelRef, advance, empty_rows, score_batch

S = Settings()
CLIN = S.clinical


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    r = synthetic_pandas(S.models.synthetic.model_copy(update={"seed": 3}), 12)
    return r.sort_values(["effective_time", "observation_id"], kind="mergesort").reset_index(drop=True)


def stream(rows: pd.DataFrame, model: ModelRef, parts: int, tolerance: float = 360) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Feed ``rows`` in ``parts`` batches cut between instants (a reading's values arrive together,
    as a Bundle or a monitor's burst does; a companion vital arriving in a later batch than its
    reading serves later vectors only — docs/streaming.md, "Late readings and bad clocks")."""
    state, alerts, out = empty_rows(), {}, []
    instants = np.sort(rows.effective_time.unique())
    for chunk in np.array_split(instants, parts):
        new = rows[rows.effective_time.isin(chunk)].assign(kafka_timestamp=pd.NaT, silver_time=pd.NaT)
        res = advance(state, alerts, new, model, CLIN, S.alerts, tolerance)
        state, alerts = res.rows, res.alerts
        out.append(res.out)
    return pd.concat(out, ignore_index=True), state


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["patient_id", "effective_time", "observation_id"]).reset_index(drop=True)


@pytest.mark.parametrize("parts", [1, 7, 40])
def test_incremental_scoring_equals_batch_whatever_the_batch_boundaries(rows, model, parts) -> None:
    batch = _sorted(score_batch(rows, model, CLIN, S.alerts))
    inc, _ = stream(rows, model, parts)
    inc = _sorted(inc)
    assert len(inc) == len(batch) == rows["observation_id"][rows["vital"].isin(BP_VITALS)].nunique()
    assert (inc.observation_id == batch.observation_id).all()
    np.testing.assert_array_equal(np.stack(inc.features), np.stack(batch.features))
    # and the vectors are the feature builder's (the training vectors)
    r = readings(rows, CLIN)
    want = pd.DataFrame({"observation_id": r.observation_id, "f": list(feature_matrix(r, CLIN.history_readings))})
    got = batch.merge(want, on="observation_id")
    np.testing.assert_array_equal(np.stack(got.features), np.stack(got.f))
    for c in ("risk_1h", "risk_6h", "risk_24h"):
        np.testing.assert_allclose(inc[c], batch[c])
    assert (inc.level == batch.level).all()
    assert inc.alert_id.fillna("-").tolist() == batch.alert_id.fillna("-").tolist()
    assert batch.alert_id.notna().sum() > 0 and set(batch.model_version) == {"7"}
    # the risks are the scorer's on those vectors
    np.testing.assert_allclose(batch[["risk_1h", "risk_6h", "risk_24h"]].to_numpy(),
                               model.scorer.predict(np.stack(batch.features)))


def test_state_keeps_only_what_the_next_vector_needs(rows, model) -> None:
    _, state = stream(rows, model, 10)
    per_patient = state[state.vital.isin(BP_VITALS)].groupby("patient_id").observation_id.nunique()
    assert (per_patient <= CLIN.history_readings).all() and per_patient.max() == CLIN.history_readings
    assert len(state) < len(rows) / 2


def _one_patient(rows: pd.DataFrame) -> pd.DataFrame:
    pid = rows.patient_id.iloc[0]
    return rows[rows.patient_id == pid].reset_index(drop=True)


def test_late_reading_is_scored_with_the_history_before_it_and_marked(rows, model) -> None:
    p = _one_patient(rows)
    obs = p.observation_id[p.vital.isin(BP_VITALS)].drop_duplicates().tolist()
    late_obs = obs[-5]  # within the retained history
    early = p[p.observation_id != late_obs].assign(kafka_timestamp=pd.NaT, silver_time=pd.NaT)
    res = advance(empty_rows(), {}, early, model, CLIN, S.alerts, 360)
    late = p[p.observation_id == late_obs].assign(kafka_timestamp=pd.NaT, silver_time=pd.NaT)
    res2 = advance(res.rows, res.alerts, late, model, CLIN, S.alerts, 10_000)
    out = res2.out
    assert len(out) == 1 and out.score_status[0] == "late" and out.observation_id[0] == late_obs
    # the vector is the reading's own, from the retained history before it
    assert not np.isnan(out.risk_6h[0])
    # beyond the tolerance it is recorded, not scored
    res3 = advance(res.rows, res.alerts, late, model, CLIN, S.alerts, 30)
    assert res3.out.score_status.tolist() == ["too_late"] and np.isnan(res3.out.risk_6h[0])
    assert res3.out.level.isna().all()


def test_duplicates_and_amendments_are_not_scored_twice(rows, model) -> None:
    p = _one_patient(rows).assign(kafka_timestamp=pd.NaT, silver_time=pd.NaT)
    res = advance(empty_rows(), {}, p.iloc[:40], model, CLIN, S.alerts, 360)
    again = p.iloc[30:60].copy()
    res2 = advance(res.rows, res.alerts, again, model, CLIN, S.alerts, 360)
    first_ids = set(res.out.observation_id)
    assert not (set(res2.out.observation_id) & first_ids)
    assert set(res2.out.observation_id) == set(again.observation_id[again.vital.isin(BP_VITALS)]) - first_ids


def test_bucket_state_round_trips_and_discharges_idle_patients(rows, model) -> None:
    """The streaming state of a bucket of patients (lib/vitalwatch/pipeline/gold/state.py) survives
    the state store's tuple form unchanged, and discharging drops only the idle patients."""
    from vitalwatch.pipeline.gold.state import BucketState

    res = advance(empty_rows(), {}, rows.assign(kafka_timestamp=pd.NaT, silver_time=pd.NaT), model, CLIN,
                  S.alerts, 360)
    pids = sorted(res.rows.patient_id.unique())
    st = BucketState(res.rows, dict(res.alerts), {p: 1_000 * (i + 1) for i, p in enumerate(pids)})
    back = BucketState.load(st.dump())
    pd.testing.assert_frame_equal(back.rows.astype({"effective_time": "datetime64[ms]"}),
                                  st.rows.astype({"effective_time": "datetime64[ms]"}), check_dtype=False)
    assert back.alerts == {p: res.alerts[p] for p in pids if p in res.alerts}
    assert back.arrival_ms == st.arrival_ms
    gone = back.discharge(before_ms=2_500)
    assert gone == pids[:2]
    assert set(back.rows.patient_id) == set(pids[2:]) and set(back.arrival_ms) == set(pids[2:])
    assert not set(back.alerts) & set(gone)
    assert BucketState.load(None).rows.empty


def test_a_pickled_model_is_loaded_once_per_process_and_scores_the_same(rows, model) -> None:
    """What a Python worker receives with every task: the same scorer object after the first."""
    import pickle

    blob = pickle.dumps(model)
    first, again = pickle.loads(blob), pickle.loads(pickle.dumps(model))
    assert (first.name, first.version) == (model.name, model.version)
    assert first.scorer is again.scorer and first.scorer is not model.scorer
    x = feature_matrix(readings(rows, CLIN), CLIN.history_readings)[:50]
    np.testing.assert_array_equal(first.scorer.predict(x), model.scorer.predict(x))
    other = pickle.loads(pickle.dumps(ModelRef(model.name, "8", model.scorer)))
    assert other.version == "8" and other.scorer is not first.scorer


class _Halved:
    """A shadow scorer unlike the champion: half its risks."""

    def __init__(self, scorer) -> None:
        self.scorer = scorer

    def predict(self, x):
        return self.scorer.predict(x) / 2


class _Broken:
    def predict(self, x):
        raise RuntimeError("shadow exploded")


ALERT_COLUMNS = ["level", "alert_id", "alert_kind", "alert_level", "risk_1h", "risk_6h", "risk_24h"]


def test_a_shadow_is_scored_on_the_same_vectors_and_never_alerts(rows, model) -> None:
    alone = _sorted(score_batch(rows, model, CLIN, S.alerts))
    with_shadow = ModelRef(model.name, model.version, model.scorer, ModelRef(model.name, "9", _Halved(model.scorer)))
    both = _sorted(score_batch(rows, with_shadow, CLIN, S.alerts))
    pd.testing.assert_frame_equal(both[ALERT_COLUMNS], alone[ALERT_COLUMNS])  # alerts from the champion alone
    scored = both["score_status"].eq("scored").to_numpy()
    for h in CLIN.horizons_hours:
        np.testing.assert_allclose(both.loc[scored, f"shadow_risk_{h}h"], both.loc[scored, f"risk_{h}h"] / 2)
    assert set(both.loc[scored, "shadow_model_version"]) == {"9"}
    assert alone["shadow_model_version"].isna().all() and alone["shadow_risk_6h"].isna().all()
    # incremental (as the stream runs it) = batch, shadow included
    inc, _ = stream(rows, with_shadow, 7)
    np.testing.assert_allclose(_sorted(inc)["shadow_risk_6h"], both["shadow_risk_6h"])


def test_a_failing_shadow_changes_nothing_but_its_own_columns(rows, model, caplog) -> None:
    alone = _sorted(score_batch(rows, model, CLIN, S.alerts))
    broken = ModelRef(model.name, model.version, model.scorer, ModelRef(model.name, "9", _Broken()))
    got = _sorted(score_batch(rows, broken, CLIN, S.alerts))
    pd.testing.assert_frame_equal(got[ALERT_COLUMNS], alone[ALERT_COLUMNS])
    assert got["shadow_risk_6h"].isna().all() and got["shadow_model_version"].isna().all()
    assert "shadow model test-model 9 failed" in caplog.text


def test_a_pickled_model_carries_its_shadow(model) -> None:
    import pickle

    ref = pickle.loads(pickle.dumps(ModelRef(model.name, "7", model.scorer, ModelRef(model.name, "9", _Halved(model.scorer)))))
    assert ref.version == "7" and ref.shadow is not None and ref.shadow.version == "9"
    assert isinstance(ref.shadow.scorer, _Halved)
