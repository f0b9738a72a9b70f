"""Times Pathling's FHIR encoder on NDJSON files; prints one JSON line. Not imported by vitalwatch.

Runs in its own virtual environment (Pathling on Maven Central needs Spark 4.0, vitalwatch runs
Spark 3.5): ``vitalwatch.bench.parsers.pathling_rate`` creates that environment and calls this
file with its Python, so nothing here may import vitalwatch.

    python pathling_worker.py --singles s.ndjson --bundles b.ndjson --repeat 3 --master 'local[*]'
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--singles", required=True, help="NDJSON: one Observation per line")
    p.add_argument("--bundles", required=True, help="NDJSON: one Bundle of Observations per line")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--master", default="local[*]")
    p.add_argument("--package", required=True, help="Maven coordinate of Pathling's runtime jar")
    p.add_argument("--ivy", required=True, help="Ivy cache directory")
    p.add_argument("--ivy-settings", required=True)
    p.add_argument("--driver-memory", default="2g")
    a = p.parse_args()

    from pathling import PathlingContext
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master(a.master).appName("vitalwatch-benchmark-pathling")
             .config("spark.jars.packages", a.package).config("spark.jars.ivy", a.ivy)
             .config("spark.jars.ivySettings", a.ivy_settings).config("spark.driver.memory", a.driver_memory)
             .config("spark.sql.session.timeZone", "UTC").config("spark.ui.showConsoleProgress", "false")
             .getOrCreate())
    spark.sparkContext.setLogLevel("WARN")
    pc = PathlingContext.create(spark)
    singles = spark.read.text(a.singles).cache()
    bundles = spark.read.text(a.bundles).cache()
    n_msgs = singles.count() + bundles.count()

    def encoded():
        return (pc.encode(singles, "Observation", column="value"),
                pc.encode_bundle(bundles, "Observation", column="value"))

    one, many = encoded()
    n_obs = one.count() + many.count()  # warm-up, and what was encoded
    times = []
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        for df in encoded():
            df.write.format("noop").mode("overwrite").save()
        times.append(time.perf_counter() - t0)
    print(json.dumps({"engine": "pathling", "spark": spark.version, "messages": n_msgs, "observations": n_obs,
                      "seconds": times}))
    spark.stop()


if __name__ == "__main__":
    main()
