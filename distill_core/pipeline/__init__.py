"""The declared pipeline: Stage objects, one runner, one ordered list, executors.

Import `distill_core.pipeline.order` for `PIPELINE`, `active_stages` and
`run_pipeline`; `pipeline.stage` for the `Stage` declaration; `pipeline.executor`
for where work runs.
"""
