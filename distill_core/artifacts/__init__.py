"""Run folders, Parquet artifacts with manifests, fingerprints and the rejects schema."""
