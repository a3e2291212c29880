"""Silences psycopg's "error ignored terminating <Pipeline>: pipeline aborted" warnings.

psycopg runs ``executemany`` in pipeline mode; when one statement fails it raises that
statement's error to the caller *and* logs a warning on leaving the aborted pipeline. The
database sink handles the raised error (retry, or isolate the record and dead-letter it), so
the warning only repeats it, once per failing batch. Other psycopg warnings pass through.
"""

from __future__ import annotations

import logging

__all__ = ["install"]

_TEMPLATES = ("error ignored terminating %r: %s", "error ignored exiting %r: %s")


class _PipelineAbortedFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg not in _TEMPLATES or not isinstance(record.args, tuple):
            return True
        args = record.args
        return not (
            len(args) == 2
            and type(args[0]).__name__ in ("Pipeline", "AsyncPipeline")
            and str(args[1]) == "pipeline aborted"
        )


def install() -> None:
    """Add the filter to the ``psycopg`` logger once."""
    logger = logging.getLogger("psycopg")
    if not any(isinstance(f, _PipelineAbortedFilter) for f in logger.filters):
        logger.addFilter(_PipelineAbortedFilter())
