"""Data: records in and out, cleaned, deduplicated and exported; the layer every stage reads through.

Entry points: ``sources.load_rows`` (any data file or folder a command reads), ``filters.filter_file``
(`selfinstruct filter`), ``scoring.score_rows`` and ``select.decide`` (`selfinstruct select`), ``export.export``
(`selfinstruct export`), ``decontam.load_index``.

``records`` reads and validates JSONL, JSON and Parquet rows with file:line errors; ``writers`` writes
atomically and never overwrites; ``similarity`` is the exact ROUGE-L index; ``formatting`` turns a row into
the prompt and completion every stage uses (the Alpaca template or a chat template); ``seeds`` and ``evalset``
are the packaged seed tasks and eval set. It imports no other stage.
"""
