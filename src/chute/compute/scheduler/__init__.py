"""Placing a server on a host: Nova's filters, image-aware weighers, and the explanation of a
placement (explain.py). Pure functions of host_state's data."""

from chute.compute.scheduler.filter_scheduler import FilterScheduler
from chute.compute.scheduler.options import SECTIONS, SchedulerOptions

__all__ = ["SECTIONS", "FilterScheduler", "SchedulerOptions"]
