"""Trainable models shared by teachers and learners."""
