"""Prefect tasks: one per stage. They pass artifact paths, choose where work runs, and retry."""
