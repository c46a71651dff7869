"""One-line, human-readable descriptions of predicted CATAMI paths, for annotation output a survey team
reads without the hierarchy at hand, e.g. "Hard substrate (rock, 0.91) with sponges (encrusting, 0.74);
flat relief (0.66); no bedforms visible (0.80)"."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

Prediction = tuple[Sequence[str], float]  # (node path from the root, probability of its deepest node)

_SUBSTRATE_KIND = {"Consolidated (hard)": "Hard substrate", "Unconsolidated (soft)": "Soft substrate"}


def _lower(name: str) -> str:
    """Lower-case a CATAMI name for running text, keeping acronyms and units such as '2D' or '(<2mm)'."""
    return " ".join(w if re.search(r"[A-Z].*[A-Z0-9]|\d", w) else w.lower() for w in name.split())


def _p(prob: float) -> str:
    return f"{prob:.2f}"


def substrate_phrase(path: Sequence[str], prob: float) -> str:
    """'Hard substrate (rock, 0.91)', 'Soft substrate (coral rubble, 0.80)', 'Water column (0.70)'."""
    path = list(path)
    if not path:
        return "Substrate not recognised"
    if path[0] == "Substrate":
        if len(path) == 1:
            return f"Substrate of unclear type ({_p(prob)})"
        kind = _SUBSTRATE_KIND.get(path[1], f"{path[1]} substrate")
        detail = f"{_lower(path[-1])}, " if len(path) > 2 else ""
        return f"{kind} ({detail}{_p(prob)})"
    if path[0] == "Anthropogenic":
        detail = f"{_lower(path[-1])}, " if len(path) > 1 else ""
        return f"Man-made substrate ({detail}{_p(prob)})"
    if path[0] == "Unclear":
        return f"Unclear substrate ({_p(prob)})"
    return f"{path[0]} ({_p(prob)})"


def biota_phrase(path: Sequence[str], prob: float) -> str:
    """'sponges (encrusting, 0.74)', 'cnidaria (corals, 0.80)', 'no visible biota (0.90)', 'no biota recognised'."""
    path = list(path)
    if not path:
        return "no biota recognised"
    if path[0] == "No visible biota":
        return f"no visible biota ({_p(prob)})"
    if path[0] == "Unclear":
        return f"unclear biota ({_p(prob)})"
    if path[0] == "Anthropogenic":
        detail = f"{_lower(path[-1])}, " if len(path) > 1 else ""
        return f"man-made objects ({detail}{_p(prob)})"
    if len(path) == 1:
        return f"biota of unrecognised kind ({_p(prob)})"
    detail = f"{_lower(path[-1])}, " if len(path) > 2 else ""
    return f"{_lower(path[1])} ({detail}{_p(prob)})"


def relief_phrase(path: Sequence[str], prob: float) -> str:
    """'flat relief (0.66)', 'low / moderate relief (low (<1m), 0.55)', 'relief not recognised'."""
    path = list(path)
    if not path:
        return "relief not recognised"
    detail = f"{_lower(path[-1])}, " if len(path) > 1 else ""
    return f"{_lower(path[0])} relief ({detail}{_p(prob)})"


def bedforms_phrase(path: Sequence[str], prob: float) -> str:
    """'no bedforms visible (0.80)', 'bedforms (2D, ripples (<10cm height), 0.61)', 'bedforms not recognised'."""
    path = list(path)
    if not path:
        return "bedforms not recognised"
    if path[0] == "None":
        return f"no bedforms visible ({_p(prob)})"
    detail = ", ".join(_lower(n) for n in path[1:])
    return f"bedforms ({detail + ', ' if detail else ''}{_p(prob)})"


PHRASES = {"substrate": substrate_phrase, "biota": biota_phrase, "relief": relief_phrase, "bedforms": bedforms_phrase}


def describe(predictions: Mapping[str, Prediction]) -> str:
    """One sentence from per-head predictions {head: (path, probability)}: substrate 'with' biota, then
    relief and bedforms after semicolons; heads not in `predictions` are left out, unknown heads appended."""
    unknown = [h for h in predictions if h not in PHRASES]
    first = []
    if "substrate" in predictions:
        first.append(substrate_phrase(*predictions["substrate"]))
    if "biota" in predictions:
        bio = biota_phrase(*predictions["biota"])
        first.append(f"with {bio}" if first else bio[:1].upper() + bio[1:])
    parts = [" ".join(first)] if first else []
    parts += [PHRASES[h](*predictions[h]) for h in ("relief", "bedforms") if h in predictions]
    parts += [f"{h}: {' > '.join(p) or 'nothing recognised'} ({_p(q)})" for h in unknown for p, q in [predictions[h]]]
    text = "; ".join(x for x in parts if x)
    return text[:1].upper() + text[1:] if text else ""
