"""Text generation with decoder LMs: model loading, prompts, sampling (issue 5, in progress)."""
