"""Prefect flows users run and schedule, and the `textdistill` CLI."""
