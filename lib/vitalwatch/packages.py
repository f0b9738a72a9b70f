"""The pinned Spark line and connector coordinates, read from conf/spark-packages.txt.

One file is the source for jobs, tests, the CLI and spark-submit.sh, so a version bump is a
one-line change that every entry point picks up."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from vitalwatch.config import conf_dir


@dataclass(frozen=True)
class SparkPackages:
    spark_version: str
    packages: tuple[str, ...]
    excludes: tuple[str, ...]

    @property
    def packages_csv(self) -> str:
        return ",".join(self.packages)

    @property
    def excludes_csv(self) -> str:
        return ",".join(self.excludes)


def parse_packages_file(text: str) -> SparkPackages:
    spark, pk, ex = None, [], []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, val = line.partition("=")
        if not sep:
            raise ValueError(f"spark-packages line {n}: expected key=value, got {raw!r}")
        key, val = key.strip(), val.strip()
        if key == "spark":
            spark = val
        elif key == "package":
            if val.count(":") != 2:
                raise ValueError(f"spark-packages line {n}: not group:artifact:version: {val!r}")
            pk.append(val)
        elif key == "exclude":
            ex.append(val)
        else:
            raise ValueError(f"spark-packages line {n}: unknown key {key!r}")
    if not spark or not pk:
        raise ValueError("spark-packages: needs a spark= line and at least one package=")
    return SparkPackages(spark, tuple(pk), tuple(ex))


@lru_cache(maxsize=4)
def load_packages(path: Path | None = None) -> SparkPackages:
    return parse_packages_file((path or conf_dir() / "spark-packages.txt").read_text())
