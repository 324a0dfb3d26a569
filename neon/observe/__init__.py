"""Logging and metrics (a Prometheus registry) shared by every process. Imports only neon.errors."""
