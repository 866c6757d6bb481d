"""Delay equations: the method of steps over a dense history of the accepted steps."""

from .method_of_steps import MethodOfSteps

__all__ = ["MethodOfSteps"]
