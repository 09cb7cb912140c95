"""Progress of the long commands on a terminal, drawn by Rich (which Typer brings).

`db upgrade` and `db downgrade` run one migration after another; on a terminal a spinner line
counts the migrations run and the time spent, under Alembic's own ``Running ...`` lines. When
stderr is not a terminal (a pipe, a CI log, a container probe), the lines come alone, as
plain text.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

# The commands that run migrations, one after another.
MIGRATING = frozenset({"upgrade", "downgrade"})


class _Lines(logging.Handler):
    """Alembic's lines worth showing: on the progress display's console, counting the
    migrations, or as plain lines on stderr."""

    def __init__(self, progress: Progress | None, task: TaskID | None) -> None:
        super().__init__()
        self.progress = progress
        self.task = task

    def emit(self, record: logging.LogRecord) -> None:
        if not _worth_showing(record):
            return
        line = record.getMessage()
        if self.progress is None or self.task is None:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
            return
        self.progress.console.print(line, markup=False, highlight=False)
        if line.startswith("Running"):
            done = int(self.progress.tasks[0].completed) + 1
            self.progress.update(
                self.task,
                advance=1,
                migrations=f"{done} migration{'' if done == 1 else 's'} run",
            )


@contextmanager
def alembic_progress(name: str) -> Iterator[None]:
    """Show what Alembic runs during ``name`` (``upgrade``, ``revision``...): Alembic's lines
    on stderr, and for the commands that migrate, a progress line under them on a terminal."""
    logger = logging.getLogger("alembic")
    level = logger.level
    console = Console(stderr=True)
    with _display(console, name) as (progress, task):
        handler = _Lines(progress, task)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            yield
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)


@contextmanager
def _display(console: Console, name: str) -> Iterator[tuple[Progress | None, TaskID | None]]:
    if name not in MIGRATING or not console.is_interactive:
        yield None, None
        return
    progress = Progress(
        SpinnerColumn(finished_text="✓"),
        TextColumn("{task.description}: {task.fields[migrations]}"),
        TimeElapsedColumn(),
        console=console,
    )
    with progress:
        task = progress.add_task(name, total=None, migrations="0 migrations run")
        try:
            yield progress, task
        finally:
            progress.update(task, total=progress.tasks[0].completed)


def _worth_showing(record: logging.LogRecord) -> bool:
    if record.name.startswith("alembic.autogenerate"):
        return True
    return record.name == "alembic.runtime.migration" and record.getMessage().startswith("Running")
