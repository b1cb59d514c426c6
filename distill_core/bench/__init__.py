"""The standard benchmark: datasets × budgets × methods × learners × seeds, cached per cell."""
