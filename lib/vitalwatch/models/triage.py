"""The e-health source project's use case 2: a critical/normal classifier on the heart-disease
CSV, trained on Spark ML, registered as ``models.triage_model_name``, and a batch scorer that
routes each row to the alerts or normal topic (the source project's ``Alerte``/``Normal``).

Label mapping, explicit: in Kaggle's ``heart.csv`` ``target = 1`` is UCI ``num = 0``, i.e. **no**
heart disease (all 303 rows match the Cleveland rows of the UCI file; see
``../shared/data/README.md``). So ``critical = 1 - target``."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from vitalwatch.config import Settings
from vitalwatch.infra.kafka_access import KafkaAccess

FEATURES = ["age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang", "oldpeak",
            "slope", "ca", "thal"]
SCHEMA_VERSION = 1


class TriageInputError(ValueError):
    """The CSV to score lacks columns the model needs."""


def read_csv(spark: SparkSession, path: Path) -> DataFrame:
    df = spark.read.csv(str(path), header=True, inferSchema=False)
    missing = [c for c in FEATURES if c not in df.columns]
    if missing:
        raise TriageInputError(f"{path}: missing columns {missing}; expected {FEATURES}")
    return df.select(*[F.col(c).cast("double").alias(c) for c in FEATURES],
                     *([F.col("target").cast("int").alias("target")] if "target" in df.columns else []))


def with_label(df: DataFrame) -> DataFrame:
    """``critical`` = 1 − ``target`` (target 1 means no disease)."""
    return df.withColumn("critical", (F.lit(1) - F.col("target")).cast("double"))


def pipeline(settings: Settings):
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import RandomForestClassifier
    from pyspark.ml.feature import VectorAssembler

    return Pipeline(stages=[
        VectorAssembler(inputCols=FEATURES, outputCol="fvec", handleInvalid="keep"),
        RandomForestClassifier(featuresCol="fvec", labelCol="critical", numTrees=200, maxDepth=5,
                               seed=settings.models.seed),
    ])


def evaluate(model, df: DataFrame) -> dict[str, float]:
    from pyspark.ml.functions import vector_to_array
    from sklearn.metrics import accuracy_score, roc_auc_score

    pdf = (model.transform(df).select("critical", vector_to_array("probability")[1].alias("p"), "prediction")
           .toPandas())
    y, p, yhat = pdf["critical"], pdf["p"], pdf["prediction"]
    pos, neg = y == 1, y == 0
    return {"auroc": float(roc_auc_score(y, p)), "accuracy": float(accuracy_score(y, yhat)),
            "sensitivity": float((yhat[pos] == 1).mean()), "specificity": float((yhat[neg] == 0).mean()),
            "n": float(len(pdf))}


@dataclass
class TriageReport:
    run_id: str
    version: str
    promoted: bool
    decision: str
    metrics: dict[str, float]


def train_triage(spark: SparkSession, settings: Settings, csv: Path) -> TriageReport:
    import mlflow
    import mlflow.spark
    import pyspark
    from mlflow.exceptions import MlflowException
    from mlflow.models import infer_signature

    from vitalwatch.models import registry
    from vitalwatch.models.datasets import file_sha256
    from vitalwatch.models.integrity import ModelIntegrityError

    data = with_label(read_csv(spark, csv))
    u = (F.abs(F.xxhash64(F.lit(str(settings.models.seed)), *FEATURES)) % 1000) / 1000.0
    data = data.withColumn("_u", u).cache()
    train, test = data.where("_u < 0.75"), data.where("_u >= 0.75")
    model = pipeline(settings).fit(train)
    met = evaluate(model, test)
    name = settings.models.triage_model_name
    exp = registry.configure(settings, experiment=f"{settings.models.experiment}-triage")
    with mlflow.start_run(experiment_id=exp, run_name="triage-heart-disease") as run:
        mlflow.log_params({"data_path": str(csv), "data_sha256": file_sha256(csv), "label": "critical = 1 - target",
                           "n_train": train.count(), "n_test": test.count(), "classifier": "RandomForest(200, depth 5)"})
        mlflow.log_metrics({f"test_{k}": v for k, v in met.items()})
        sample = train.select(*FEATURES).limit(5).toPandas()
        sig = infer_signature(sample, model.transform(train.limit(5)).select("prediction").toPandas())
        info = mlflow.spark.log_model(model, artifact_path="model", signature=sig, registered_model_name=name,
                                      pip_requirements=[f"pyspark=={pyspark.__version__}", f"mlflow=={mlflow.__version__}"])
        version = str(info.registered_model_version)
        try:
            champ = load_triage_model(settings)
            champ_auc = evaluate(champ[0], test)["auroc"]
        except (MlflowException, ModelIntegrityError):
            champ_auc = None
        d = registry.decide_and_alias(settings, name, version, "test_auroc", met["auroc"], champ_auc)
        mlflow.set_tags({"registered_version": version, "promoted": str(d.promoted).lower(), "decision": d.explain()})
    data.unpersist()
    return TriageReport(run.info.run_id, version, d.promoted, d.explain(), met)


def load_triage_model(settings: Settings, alias: str | None = None):
    """(Spark ML PipelineModel, version) behind ``models:/<triage>@<alias>``."""
    import mlflow.spark

    from vitalwatch.models import registry
    from vitalwatch.models.integrity import verified_download

    name = settings.models.triage_model_name
    mv = registry.client(settings).get_model_version_by_alias(name, alias or settings.models.champion_alias)
    with tempfile.TemporaryDirectory(prefix="vitalwatch-triage-") as tmp:
        local = verified_download(settings, name, str(mv.version), Path(tmp))
        return mlflow.spark.load_model(str(local)), str(mv.version)  # the stages are read while loading


def score(spark: SparkSession, settings: Settings, csv: Path) -> DataFrame:
    """Rows of ``csv`` (label column ignored if present) with the champion's verdict, each as
    the JSON event it will be published as and the topic it goes to."""
    from pyspark.ml.functions import vector_to_array

    df = read_csv(spark, csv).drop("target")  # bad input fails before anything else happens
    model, version = load_triage_model(settings)
    indexed = spark.createDataFrame(df.rdd.zipWithIndex().map(lambda r: (*r[0], r[1])), [*FEATURES, "row_index"])
    src = csv.name
    out = model.transform(indexed).withColumn("p_critical", vector_to_array("probability")[1])
    critical = F.col("prediction") == 1.0
    event_id = F.sha2(F.concat_ws("|", F.lit("triage"), F.lit(src), F.col("row_index").cast("string"),
                                  F.lit(version)), 256).substr(1, 32)
    event = F.struct(
        F.lit(SCHEMA_VERSION).alias("schema_version"), F.lit("triage").alias("event_type"),
        event_id.alias("event_id"), F.when(critical, "critical").otherwise("normal").alias("classification"),
        F.round("p_critical", 4).alias("probability_critical"),
        F.lit(f"{settings.models.triage_model_name}/{version}").alias("model"),
        F.lit(src).alias("source_file"), F.col("row_index"),
        F.struct(*FEATURES).alias("features"),
        F.date_format(F.current_timestamp(), "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'").alias("scored_at"))
    topics = settings.kafka.topics
    return out.select(event_id.alias("key"), F.to_json(event).alias("value"),
                      F.when(critical, topics.alerts).otherwise(topics.normal).alias("topic"),
                      F.col("p_critical"), F.col("prediction"), F.col("row_index"))


def publish(scored: DataFrame, access: KafkaAccess) -> dict[str, int]:
    """Write the events to Kafka (topic per row) as ``access`` (the ``pipeline`` principal);
    return counts per topic."""
    scored = scored.cache()
    (scored.select("key", "value", "topic").write.format("kafka")
     .options(**access.spark_options()).save())
    counts = {r["topic"]: int(r["count"]) for r in scored.groupBy("topic").count().collect()}
    scored.unpersist()
    return counts
