"""Embedded span store: row building, batched writes, OTLP receiving, reading, retention."""
