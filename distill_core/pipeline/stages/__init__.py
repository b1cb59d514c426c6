"""One module per pipeline stage, each declaring its `Stage` (see `pipeline/order.py`)."""
