"""Where gold goes besides the lake: the Kafka topics, MongoDB and Elasticsearch.

:mod:`vitalwatch.sinks.writers` holds :class:`~vitalwatch.sinks.writers.Sinks`, the one object the
alert path and the serving queries write through; the other modules are one store or rule each
(``mongo``, ``search``, ``kibana``, ``events``, ``dead_letter``, ``rejections``, ``isolate``,
``analyst_views``). Importing this package loads no Spark, so the dashboard and the API can use
``sinks.mongo`` alone."""
