"""Wiring: builds ServedModels from configuration. The only place that knows every layer."""
