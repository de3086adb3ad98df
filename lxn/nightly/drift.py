"""Has tonight departed from the trailing nights? Population stability index (PSI) of the
confidence distribution and of the brand mix, from the scans' summaries alone (no report is
read): a camera feed that changed, or a model that stopped fitting the images, shows there first.

PSI = sum over bins of (a - e) * ln(a / e), with a and e tonight's and the trailing window's
shares of a bin. The conventional reading: below 0.1 stable, 0.1-0.25 a moderate shift, above
0.25 a shift worth a look (`PSI_CUT`). Shares are floored at `_FLOOR` so that a bin empty on one
side gives a large but finite term.

Sampling alone gives a PSI above zero: with n and m images on the two sides and k bins it is about
chi-square with k-1 degrees of freedom times (1/n + 1/m) (simulated: 60 confidences against 240
from one distribution give a median of 0.11 and a 95th percentile of 0.27). A night is flagged only when its PSI is above the cut and above what sampling
gives 3 standard deviations out (`noise_cut`), so a small night or a long brand list is not a
false alarm.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["CONFIDENCE_BINS", "PSI_CUT", "WINDOW_NIGHTS", "MIN_NIGHTS", "MIN_IMAGES", "NO_BRAND", "confidence_histogram", "psi", "noise_cut",
           "brand_mix", "assess"]

# Ten equal bins over [0, 1]; a summary stores the counts of its ok images' confidences in them.
CONFIDENCE_BINS = np.linspace(0.0, 1.0, 11)
PSI_CUT = 0.25
WINDOW_NIGHTS = 14  # the trailing nights a night is compared with (also the page's chart)
MIN_NIGHTS = 3     # trailing nights needed before a night is judged
MIN_IMAGES = 50    # images a night needs (tonight, and the window in all), or the shares are noise
NO_BRAND = "(no brand)"
_FLOOR = 1e-4


def confidence_histogram(confidences: np.ndarray) -> list[int]:
    """Counts of `confidences` in CONFIDENCE_BINS (1.0 in the last bin; NaN dropped)."""
    values = np.clip(np.asarray(confidences, dtype=np.float64), 0.0, 1.0)
    counts, _ = np.histogram(values[~np.isnan(values)], bins=CONFIDENCE_BINS)
    return counts.astype(int).tolist()


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """The population stability index between two count (or share) vectors over the same bins."""
    e, a = np.asarray(expected, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape or e.sum() <= 0 or a.sum() <= 0:
        raise ValueError(f"psi needs two non-empty count vectors of one length, got {e.shape} and {a.shape}")
    e = np.maximum(e / e.sum(), _FLOOR)
    a = np.maximum(a / a.sum(), _FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def noise_cut(bins: int, n: float, m: float) -> float:
    """The PSI that sampling alone stays under (mean + 3 sd of chi-square(bins - 1) x (1/n + 1/m))."""
    df = max(1, bins - 1)
    return float((df + 3 * np.sqrt(2 * df)) * (1 / max(n, 1) + 1 / max(m, 1)))


def brand_mix(summary: Mapping[str, Any]) -> Counter[str]:
    """Images per brand in a summary, with the ok images without a brand as NO_BRAND."""
    mix = Counter({str(k): int(v) for k, v in summary.get("images_by_brand", {}).items()})
    no_brand = int(summary.get("counts", {}).get("no_brand", 0))
    if no_brand:
        mix[NO_BRAND] += no_brand
    return mix


def assess(tonight: Mapping[str, Any], trailing: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The drift verdict of a summary against the summaries of the trailing nights (any number of
    scans a night): `drifted` True/False with both PSIs, or None with the reason it cannot say."""
    trailing = list(trailing)
    nights = sorted({s.get("date") for s in trailing})
    verdict: dict[str, Any] = {"cut": PSI_CUT, "window_nights": len(nights),
                               "window": [nights[0], nights[-1]] if nights else None}
    ok = int(tonight.get("counts", {}).get("ok", 0))
    if len(nights) < MIN_NIGHTS:
        return {**verdict, "drifted": None, "reason": f"{len(nights)} trailing nights, {MIN_NIGHTS} needed"}
    if ok < MIN_IMAGES:
        return {**verdict, "drifted": None, "reason": f"{ok} images tonight, {MIN_IMAGES} needed"}

    reasons = []
    mix_tonight, mix_window = brand_mix(tonight), sum((brand_mix(s) for s in trailing), Counter())
    names = sorted(set(mix_tonight) | set(mix_window))
    brand_psi = brand_cut = None
    if sum(mix_window.values()) >= MIN_IMAGES:
        brand_psi = round(psi([mix_window[n] for n in names], [mix_tonight[n] for n in names]), 4)
        brand_cut = round(max(PSI_CUT, noise_cut(len(names), sum(mix_tonight.values()), sum(mix_window.values()))), 4)
        if brand_psi > brand_cut:
            reasons.append(f"brand mix PSI {brand_psi:.2f} > {brand_cut:.2f}")

    confidence_psi = confidence_cut = None
    histograms = [s["confidence_histogram"] for s in trailing if len(s.get("confidence_histogram") or ()) == 10]
    window_hist = np.sum(histograms, axis=0) if histograms else np.zeros(10)
    if len(tonight.get("confidence_histogram") or ()) == 10 and window_hist.sum() >= MIN_IMAGES:
        confidence_psi = round(psi(window_hist, tonight["confidence_histogram"]), 4)
        used = int(np.count_nonzero(window_hist + np.asarray(tonight["confidence_histogram"])))
        confidence_cut = round(max(PSI_CUT, noise_cut(used, sum(tonight["confidence_histogram"]), window_hist.sum())), 4)
        if confidence_psi > confidence_cut:
            reasons.append(f"confidence PSI {confidence_psi:.2f} > {confidence_cut:.2f}")
    if brand_psi is None and confidence_psi is None:
        return {**verdict, "drifted": None, "reason": f"the trailing nights hold fewer than {MIN_IMAGES} images"}
    return {**verdict, "drifted": bool(reasons), "brand_psi": brand_psi, "brand_cut": brand_cut,
            "confidence_psi": confidence_psi, "confidence_cut": confidence_cut, "reasons": reasons}
