"""A record, kept in a streaming checkpoint, of how its state is laid out.

Spark resumes a checkpoint's state with whatever code starts it. Where the layout depends on a
setting (the scoring state's bucket count) or on the code (a state schema that changed), a
resumed query would read the state wrongly or fail deep inside a batch. The layout is written
into the checkpoint (through Hadoop's FileSystem, so any checkpoint location works) when the
query first starts, and a start with another layout is refused with the remedy."""

from __future__ import annotations

import json
from typing import Any

from pyspark.sql import SparkSession

LAYOUT_FILE = "vitalwatch-state-layout.json"


def check_layout(spark: SparkSession, checkpoint: str, want: dict[str, Any], legacy: dict[str, Any],
                 remedy: str) -> None:
    """Refuse to resume ``checkpoint`` unless its recorded layout is ``want``; a checkpoint with
    offsets but no record predates the record and has the ``legacy`` layout."""
    jvm = spark.sparkContext._jvm
    root = jvm.org.apache.hadoop.fs.Path(checkpoint)
    fs = root.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    record = jvm.org.apache.hadoop.fs.Path(root, LAYOUT_FILE)
    if fs.exists(record):
        stream = fs.open(record)
        try:
            have = json.loads(jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
        finally:
            stream.close()
    elif fs.exists(jvm.org.apache.hadoop.fs.Path(root, "offsets")):
        have = legacy
    else:
        have = None
    if have is not None and have != want:
        raise ValueError(f"checkpoint {checkpoint} holds state laid out as {have}, but this version with these "
                         f"settings needs {want}: {remedy}")
    if not fs.exists(record):
        out = fs.create(record, True)
        try:
            out.write(json.dumps(want).encode())
        finally:
            out.close()
