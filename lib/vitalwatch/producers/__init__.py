"""Producers of FHIR vitals into Kafka: the device simulator and the ICU data replay."""
