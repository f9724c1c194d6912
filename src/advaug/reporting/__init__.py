"""Tables 1-3 and plots from run / multirun folders (``src/report.py``)."""

from advaug.reporting.report import write_report

__all__ = ["write_report"]
