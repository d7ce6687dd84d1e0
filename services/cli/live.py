"""The live view of a run: a progress bar for the current step, a table row per finished round."""

from __future__ import annotations

import dataclasses
import re
import sys
import time
from typing import Any, TextIO

import grpc

from lesslabels.cli.client import Client
from lesslabels.cli.common import CliError, ServiceCallError
from lesslabels.cli.report import COLUMNS, format_table, row_cells, rows_from_rounds
from lesslabels.cli.runconfig import FINAL_STATES, STATE_NAMES, STEP_NAMES, WAITING, format_amount, strategy_label
from lesslabels.client import Round, Run, StepProgress

# Steps whose progress is worth a bar (the others take a moment).
BAR_STEPS = {"TRAIN", "EVALUATE", "SCORE", "SEED", "SELECT"}
#: Without a terminal, a step's progress line is printed at most this often.
LINE_EVERY_S = 10.0


def progress_enabled(flag: bool | None, stream: TextIO | None = None) -> bool:
    """Bars only on a terminal, and never when --no-progress was given."""
    if flag is False:
        return False
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def describe_run(run: Run) -> str:
    c = run.config
    parts = [
        f"run {run.id}" + (f" ({c.name})" if c.name else ""),
        f"dataset={c.dataset}",
        f"strategy={strategy_label(c.strategy)}",
        f"seed={format_amount(c.seed_size)}",
        f"batch={format_amount(c.batch_size)}",
        *([f"candidates={c.candidates}"] if c.candidates else []),
        f"state={STATE_NAMES.get(run.state, '?')}",
        f"step={STEP_NAMES.get(run.step, '?')}",
        f"round={run.round}",
        f"labels={run.labelled_count}" + (f"/{run.pool_size}" if run.pool_size else ""),
    ]
    line = "  ".join(parts)
    if run.state == "FAILED" and run.error:
        line += f"\n  error: {run.error}"
    if run.stop_reason:
        line += f"\n  stopped: {run.stop_reason}"
    return line


def waiting_hint(run: Run) -> str:
    return (
        f"run {run.id} waits for labels: 'lesslabels label export {run.id} FILE.csv', label the file, "
        f"then 'lesslabels label import {run.id} FILE.csv'"
    )


class RunView:
    """Prints rows of finished rounds once each and drives one bar per (round, step)."""

    def __init__(self, pool_size: int, *, progress: bool, out: TextIO | None = None, err: TextIO | None = None):
        self.pool_size = pool_size
        self.progress = progress
        # Resolved now, not at import, so redirected streams (tests, pipes) are honoured.
        self.out, self.err = out or sys.stdout, err or sys.stderr
        self.printed: set[int] = set()
        self.latest: dict[int, Round] = {}
        self._header = False
        self._bar: Any = None  # a tqdm bar; tqdm is imported when first needed
        self._bar_key: tuple[int, str] | None = None
        self._last_line = ""
        self._last_line_at = 0.0
        self._first_count: tuple[float, int] | None = None  # (time, n) of the first "n/total" of this bar

    def _write(self, text: str) -> None:
        if self._bar is not None:
            from tqdm import tqdm

            tqdm.write(text, file=self.out)
        else:
            print(text, file=self.out, flush=True)

    def add_rounds(self, rounds, run: Run) -> None:
        """Remember the latest version of each round; print the rounds that are over.

        A round is over once the run has moved past it or has stopped: only then are its
        selection and timings final, so each row is printed once, complete.
        """
        for r in rounds:
            self.latest[r.index] = r
        over = run.state in FINAL_STATES or run.state == WAITING
        ready = [r for i, r in sorted(self.latest.items()) if i not in self.printed and (over or i < run.round)]
        for row in rows_from_rounds(ready, self.pool_size):
            # Which round the run keeps is known only at its end (the final table and `report` say).
            row = dataclasses.replace(row, kept=False)
            self.printed.add(row.round)
            lines = format_table(COLUMNS, [row_cells(row)]).splitlines()
            if not self._header:
                self._write("\n".join(lines[:2]))
                self._header = True
            self._write(lines[2])

    def update(self, run: Run, step_progress: float, message: str, progress: StepProgress | None = None) -> None:
        """Show the step's state. ``progress`` (measured steps or texts, speed, ETA) drives the bar;
        without a terminal a progress line is printed at most every ``LINE_EVERY_S`` seconds."""
        key = (run.round, run.step)
        label = f"round {run.round} {STEP_NAMES.get(run.step, '?')}"
        if not self.progress:
            line = f"{label}: {message}" if message else label
            now = time.monotonic()
            due = progress is not None and now - self._last_line_at >= LINE_EVERY_S
            if (key != self._bar_key or due) and line != self._last_line:
                print(line, file=self.err, flush=True)
                self._last_line, self._last_line_at = line, now
            self._bar_key = key
            return
        from tqdm import tqdm

        if key != self._bar_key:
            self.close_bar()
            if run.step in BAR_STEPS and run.state == "RUNNING":
                self._bar = tqdm(
                    total=100,
                    desc=label,
                    file=self.err,
                    leave=False,
                    # ETA from the step's own progress; "?" until there is some.
                    bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}",
                )
            self._bar_key = key
            self._first_count = None
        if self._bar is not None:
            target = int(round(100 * max(0.0, min(1.0, step_progress))))
            if target > self._bar.n:
                self._bar.update(target - self._bar.n)
            if message:
                # Measured progress names its own speed and ETA; older coordinators send only "n/total".
                rate = "" if progress is not None else self._rate(message)
                self._bar.set_postfix_str(f"{message} ({rate})" if rate else message, refresh=True)

    def _rate(self, message: str) -> str:
        """Items per second from the "n/total" counts of the step's messages (scoring 400/4000),
        measured between the first count this bar saw and now; "" until it can be known."""
        match = re.search(r"(\d+)/(\d+)", message)
        if match is None:
            return ""
        now, n = time.monotonic(), int(match.group(1))
        if self._first_count is None:
            self._first_count = (now, n)
            return ""
        t0, n0 = self._first_count
        if now - t0 < 0.5 or n <= n0:
            return ""
        per_second = (n - n0) / (now - t0)
        return f"{per_second:.1f}/s" if per_second < 100 else f"{per_second:.0f}/s"

    def close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def follow_run(
    client: Client,
    run_id: int,
    *,
    progress: bool,
    out: TextIO | None = None,
    err: TextIO | None = None,
    reconnect_seconds: float = 60.0,
    watch_window: float = 600.0,
) -> Run:
    """Show a run live until it ends or waits for labels; returns its last state.

    A dropped stream (a coordinator restart) is re-opened for up to ``reconnect_seconds``.
    """
    detail = client.get_run(run_id)
    view = RunView(detail.run.pool_size, progress=progress, out=out, err=err)
    run = detail.run
    view.add_rounds(detail.rounds, run)
    lost_since = None
    try:
        while run.state not in FINAL_STATES and run.state != WAITING:
            try:
                for event in client.watch_run(run_id, timeout=watch_window):
                    lost_since = None
                    run = event.run
                    if view.pool_size == 0 and run.pool_size:
                        view.pool_size = run.pool_size
                    view.add_rounds([event.round] if event.round is not None else [], run)
                    view.update(run, event.step_progress, event.message, event.progress)
                    if run.state in FINAL_STATES or run.state == WAITING:
                        break
            except ServiceCallError as exc:
                # The stream's own deadline: open the next one. A lost coordinator: retry for a while.
                if exc.code is not grpc.StatusCode.DEADLINE_EXCEEDED:
                    now = time.monotonic()
                    lost_since = lost_since or now
                    if exc.code is not grpc.StatusCode.UNAVAILABLE or now - lost_since > reconnect_seconds:
                        raise
                    time.sleep(1.0)
            # The stream ended (or broke): take the stored state and rounds, then watch again if still active.
            detail = client.get_run(run_id)
            run = detail.run
            view.add_rounds(detail.rounds, run)
            if run.state not in FINAL_STATES:
                time.sleep(0.5)
    except KeyboardInterrupt:
        view.close_bar()
        raise CliError(
            f"stopped watching; run {run_id} goes on ('lesslabels status {run_id} --watch' to follow it, "
            f"'lesslabels cancel {run_id}' to stop it)",
            exit_code=130,
        ) from None
    finally:
        view.close_bar()
    return run
