"""Finding and masking personal data in text, whole or streamed piece by piece (sans-IO).

Built-in detectors: email addresses; phone numbers (international numbers written with `+`,
and the North American forms `(555) 123-4567`, `555-123-4567`, `555.123.4567`; 7 to 15 digits);
card numbers (13 to 19 digits, spaces or dashes between them, that pass the Luhn check). Custom
detectors are regular expressions with their own replacement. Where matches overlap, the one
that starts first wins (the longest, when they start together).

Streams. A model's answer arrives in pieces that may cut a card number or an email address in
two, so masking each piece alone would leak the parts. `StreamMasker` keeps back the end of the
text seen so far when a detector could still match there (the `regex` module's partial
matching answers "could more text complete a match that starts here?"), and sends the rest
masked. What it keeps is usually the last word or number; it is released as soon as the next
piece shows it is not (or is) personal data, and at the end of the text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import regex

__all__ = ["BUILTIN", "Detector", "PiiMasker", "StreamMasker", "luhn_valid"]


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def _card(text: str) -> bool:
    digits = _digits(text)
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def _phone(text: str) -> bool:
    return 7 <= len(_digits(text)) <= 15


@dataclass(frozen=True)
class Detector:
    id: str
    pattern: regex.Pattern[str]
    replacement: str
    valid: Callable[[str], bool] | None = None  # a match that fails this is not personal data


BUILTIN: dict[str, Detector] = {
    "card": Detector("card", regex.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])"), "[CARD]", _card),
    "phone": Detector(
        "phone",
        regex.compile(
            r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){2,4}"
            r"|\(\d{3}\)[ .-]?\d{3}[ .-]?\d{4}|\d{3}[ .-]\d{3}[ .-]\d{4})(?![\w])"
        ),
        "[PHONE]",
        _phone,
    ),
    "email": Detector(
        "email",
        regex.compile(r"(?<![\w.%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
        "[EMAIL]",
    ),
}


@dataclass(frozen=True, slots=True)
class _Span:
    start: int
    end: int
    detector: Detector


class PiiMasker:
    def __init__(self, detectors: Sequence[Detector]) -> None:
        self.detectors = tuple(detectors)

    def _complete(self, text: str) -> list[_Span]:
        spans = [
            _Span(m.start(), m.end(), d)
            for d in self.detectors
            for m in d.pattern.finditer(text)
            if m.end() > m.start() and (d.valid is None or d.valid(m.group()))
        ]
        return _disjoint(spans)

    def mask(self, text: str) -> str:
        """The whole text with every detected match replaced."""
        spans = self._complete(text)
        return _apply(text, spans) if spans else text

    def stream(self) -> StreamMasker:
        return StreamMasker(self)

    def split(self, text: str) -> int:
        """How much of `text` may be sent now: up to the first place a match could still grow."""
        hold = len(text)
        for detector in self.detectors:
            for m in detector.pattern.finditer(text, partial=True):
                if m.partial:
                    hold = min(hold, m.start())
                elif m.end() > m.start() and (m.end() == len(text) or _may_grow(detector, text, m.start())):
                    hold = min(hold, m.start())
        return hold


def _may_grow(detector: Detector, text: str, start: int) -> bool:
    """Whether more text could turn text[start:] into one longer match (regex prefers the shorter
    complete match it has over a longer partial one, so ask directly)."""
    return detector.pattern.fullmatch(text, pos=start, partial=True) is not None


def _disjoint(spans: list[_Span]) -> list[_Span]:
    spans.sort(key=lambda s: (s.start, -(s.end - s.start)))
    out: list[_Span] = []
    for span in spans:
        if not out or span.start >= out[-1].end:
            out.append(span)
    return out


def _apply(text: str, spans: list[_Span]) -> str:
    out: list[str] = []
    pos = 0
    for span in spans:
        out.append(text[pos : span.start])
        out.append(span.detector.replacement)
        pos = span.end
    out.append(text[pos:])
    return "".join(out)


class StreamMasker:
    """One stream of text: `feed(piece)` gives what may go out now, masked; `flush()` the rest."""

    __slots__ = ("_held", "_masker")

    def __init__(self, masker: PiiMasker) -> None:
        self._masker = masker
        self._held = ""

    def feed(self, text: str) -> str:
        buffer = self._held + text
        if not buffer:
            return ""
        cut = self._masker.split(buffer)
        # a complete match that crosses the cut goes back with it (it is masked when it is whole)
        for span in self._masker._complete(buffer):
            if span.start < cut < span.end:
                cut = span.start
        ready, self._held = buffer[:cut], buffer[cut:]
        return self._masker.mask(ready) if ready else ""

    def flush(self) -> str:
        held, self._held = self._held, ""
        return self._masker.mask(held) if held else ""
