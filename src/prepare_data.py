"""Convert a downloaded public dataset into the project's on-disk format: ``python src/prepare_data.py --help``
(``advaug-prepare-data`` after ``pip install -e .``); the command lives in :mod:`advaug.data.converters.command`."""

from advaug.data.converters.command import main

if __name__ == "__main__":
    raise SystemExit(main())
