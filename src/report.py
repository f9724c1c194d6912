"""Tables 1-3 and plots from one or more run / multirun folders: ``python src/report.py --help``
(``advaug-report`` after ``pip install -e .``); the command lives in :mod:`advaug.reporting.command`."""

import sys

from advaug.reporting.command import main

if __name__ == "__main__":
    sys.exit(main())
