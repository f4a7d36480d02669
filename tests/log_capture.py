# Copyright (c) hidiff_mm contributors. All rights reserved.
"""What MMEngine's current logger says inside a block, for the tests that check a log line."""
import logging
from contextlib import contextmanager
from typing import Iterator, List

from mmengine.logging import MMLogger


@contextmanager
def log_lines(level: int = logging.NOTSET) -> Iterator[List[str]]:
    """The messages of ``level`` and above that MMEngine's current logger emits inside the
    block, in order."""
    lines: List[str] = []
    handler = logging.Handler(level)
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
