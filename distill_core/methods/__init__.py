"""Distillation methods behind one interface: the registry and the families' implementations."""

from distill_core.methods.registry import METHODS, Method, get_method, method_names

__all__ = ["METHODS", "Method", "get_method", "method_names"]
