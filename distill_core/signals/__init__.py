"""Signals: sentence embeddings of the corpus (teacher signals come later)."""
