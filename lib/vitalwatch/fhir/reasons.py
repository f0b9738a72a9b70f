"""The parser's output vocabulary: every quarantine reason with what it means, and the columns
of the silver and quarantine tables. Kept apart from the Spark code so the docs generator
(:mod:`vitalwatch.docgen`) reads the reasons without importing PySpark."""

from __future__ import annotations

IGNORED = "non_vital_resource"  # a Bundle's other resources: counted per type, not quarantined
TIME_BOUND_REASONS = ("effective_time_in_future", "effective_time_too_old")

REASONS: dict[str, str] = {
    "empty_message": "the Kafka value is empty",
    "message_too_large": "the Kafka value is larger than fhir.max_message_bytes (not parsed)",
    "invalid_encoding": "the Kafka value is not valid UTF-8",
    "invalid_json": "the Kafka value is not one valid JSON document (syntax, NaN/Infinity, control characters)",
    "duplicate_json_key": "a JSON object names the same key twice (FHIR JSON forbids it; no value is picked)",
    "trailing_data": "more data after the first JSON value",
    "json_too_deep": "JSON nested deeper than fhir.max_json_depth",
    "bundle_too_large": "a Bundle with more entries than fhir.max_bundle_entries (not parsed)",
    "fhir_type_error": "valid JSON, but a field has the wrong JSON type for FHIR R4 (e.g. a string value where a decimal is required)",
    "not_a_fhir_resource": "the JSON has no resourceType",
    "unsupported_resource_type": "a message that is neither an Observation nor a Bundle",
    "unsupported_bundle_type": "a Bundle whose type is not one of fhir.bundle_types",
    "empty_bundle": "a Bundle without entries",
    "bundle_entry_without_resource": "a Bundle entry without a resource",
    "status_not_accepted": "the Observation status is not one of fhir.accepted_statuses",
    "missing_subject": "the Observation has no subject",
    "unresolved_reference": "the subject is a urn:uuid:/urn:oid: reference to no Patient entry of the Bundle",
    "subject_not_patient": "the subject is not a Patient",
    "invalid_identifier": "an id that is not a FHIR id, or an identifier that is too long or not printable",
    "missing_effective_time": "no effective[x]",
    "imprecise_effective_time": "effective time given only to the year or month",
    "effective_time_without_timezone": "a dateTime with a time but no zone",
    "invalid_effective_time": "effective[x] is not a FHIR dateTime",
    "effective_time_too_old": "effective time before fhir.min_effective_time",
    "effective_time_in_future": "effective time later than its arrival plus fhir.max_clock_skew",
    "unsupported_code": "no LOINC code of a monitored vital sign",
    "no_measured_value": "a known vital sign without a value (dataAbsentReason, panel only)",
    "value_not_quantity": "the value is not a Quantity",
    "invalid_value": "valueQuantity without a finite numeric value (missing, NaN, Infinity, overflow)",
    "value_has_comparator": "a value with a comparator (<, >) is not a measurement",
    "missing_unit": "valueQuantity without a unit",
    "unit_not_convertible": "no defined conversion from the unit to the canonical unit",
    "out_of_physiological_range": "outside the physiological limits of conf/vitals.yaml",
    "implausible_blood_pressure": "diastolic not below systolic in one panel",
    "conflicting_duplicate": "the same vital twice in one resource, or the same observation id and version "
                             "as an accepted value but another value (the first accepted stays)",
}

SILVER_COLUMNS = (
    "observation_id", "version_id", "patient_id", "device_id", "effective_time", "effective_date",
    "effective_precision", "loinc", "vital", "value", "unit", "original_value", "original_unit",
    "status", "source_path", "topic", "partition", "offset", "kafka_timestamp", "ingest_time",
)

QUARANTINE_COLUMNS = (
    "reason", "detail", "observation_id", "patient_id", "loinc", "entry_index", "source_path",
    "raw", "kafka_key", "topic", "partition", "offset", "kafka_timestamp", "ingest_time",
)
