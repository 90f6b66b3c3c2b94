"""Profiles of a loaded server: ``python -m harness.profile embedded|kafka``."""
