"""Did-you-mean: the known name closest to one that is not known."""

from __future__ import annotations

from collections.abc import Iterable


def did_you_mean(word: str, choices: Iterable[str], *, cutoff: float = 0.7,
                 fold_case: bool = True) -> str | None:
    """The choice closest to `word` (case aside, unless fold_case is False) when one is
    close enough (difflib's ratio >= cutoff) to be a typo of it; None otherwise."""
    import difflib  # only when something is unknown: not on every command's start

    fold = str.lower if fold_case else str
    by_folded = {fold(c): c for c in choices}
    close = difflib.get_close_matches(fold(word), list(by_folded), n=1, cutoff=cutoff)
    return by_folded[close[0]] if close else None
