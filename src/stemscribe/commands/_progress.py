"""A progress callback that draws one tqdm bar per stage on stderr (the CLI's view of progress events)."""

from __future__ import annotations

import sys
from typing import Any, Mapping


class StageBars:
    """Turns ``{"stage", "fraction"}`` events into a bar per stage; call :meth:`close` at the end."""

    def __init__(self, prefix: str = "", enabled: bool | None = None) -> None:
        self.prefix = prefix
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._bar = None
        self._stage: str | None = None

    def __call__(self, event: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        stage = str(event.get("stage", ""))
        label = stage + (f" {event['stem']}" if event.get("stem") else "")
        if stage != self._stage:
            self.close()
            self._stage = stage
            self._bar = tqdm(total=100, desc=f"{self.prefix}{stage}", unit="%", leave=False, file=sys.stderr,
                             bar_format="{desc:<28} {bar} {n_fmt:>3}% [{elapsed}<{remaining}]")
        bar = self._bar
        bar.set_description_str(f"{self.prefix}{label}"[:28])
        target = int(round(100 * float(event.get("fraction", 0.0))))
        if target > bar.n:
            bar.update(target - bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            self._stage = None
