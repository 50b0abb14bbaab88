"""Did-you-mean: the known name closest to one that is not known."""

from __future__ import annotations

from collections.abc import Iterable


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The choice closest to `word` (case aside) when one is close enough to be a typo of
    it; None otherwise."""
    import difflib  # only when something is unknown: not on every command's start

    by_folded = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(word.lower(), list(by_folded), n=1, cutoff=0.7)
    return by_folded[close[0]] if close else None
