"""The run lifecycle: what a run folder holds, and how a run starts, fails, resumes and stops.

- :mod:`~advaug.run.folder`: the run folder's file names, its status (``metrics.json``), the completed record
- :mod:`~advaug.run.entry`: entry-point failure handling (one line, exit status 2; sweep jobs fail alone)
- :mod:`~advaug.run.commands`: the entry points (``python src/<name>.py`` and ``advaug-<name>``)
- :mod:`~advaug.run.resume`: which checkpoint a run resumes from; a rerun into a completed folder
- :mod:`~advaug.run.sweep`: the sweep's ``summary.json`` and the sweeper's objective
- :mod:`~advaug.run.signals`: SIGTERM (the DDP handler, interrupted not failed, joblib workers)
- :mod:`~advaug.run.distributed`: which process writes outputs, which launches are refused
"""
