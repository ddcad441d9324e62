"""The one interface every separation model implements."""

from __future__ import annotations

import abc

from ..types import Audio, Progress


class Separator(abc.ABC):
    """A loaded separation model.

    ``separate`` takes any :class:`Audio` (any sample rate, any channel count) and returns one
    :class:`Audio` per name in ``stems``, each with the input's sample rate, stereo (2 channels,
    or the input's channel count when it is mono/stereo), and exactly the input's length.
    Long inputs are processed in chunks (bounded memory); ``progress`` gets
    ``{"stage": "separate", "fraction": f}`` events.
    """

    #: registry name, e.g. "htdemucs" or "lite"
    name: str = ""
    #: stems in output order
    stems: tuple[str, ...] = ("drums", "bass", "other", "vocals")
    #: the rate the model works at; inputs are resampled to it and outputs back
    sr: int = 44100

    @abc.abstractmethod
    def separate(self, audio: Audio, *, progress: Progress | None = None) -> dict[str, Audio]:
        """Split ``audio`` into ``{stem: Audio}``."""
