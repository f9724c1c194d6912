"""Tables 1-3 and plots from run / multirun folders (``src/report.py``)."""

from typing import Any

__all__ = ["write_report"]


def __getattr__(name: str) -> Any:
    # lazy: advaug.run.sweep (a Hydra callback of every training sweep) imports reporting.collect,
    # which must not pull in matplotlib through report -> plots
    if name == "write_report":
        from advaug.reporting.report import write_report

        return write_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
