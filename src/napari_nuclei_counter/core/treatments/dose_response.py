"""The four-parameter log-logistic dose-response fit (R drc's ``LL.4``).

``y = bottom + (top - bottom) / (1 + (x / ic50) ** hill)``, with ``y`` the
percent of control and ``x`` the concentration. scipy's
:func:`~scipy.optimize.curve_fit` fits it in ``log(ic50)`` (the parameter
whose error is symmetric), within bounds: ``0 <= bottom, top <= 150``,
``hill`` between :data:`HILL_BOUNDS`, ``ic50`` up to :data:`IC50_DECADES`
decades beyond the tested concentrations. From the fit:

- the 95% confidence interval of the IC50: ``log(ic50) +- t(0.975, n - 4) *
  se``, ``se`` from the covariance of the fit, back to concentrations;
- the absolute IC50: where the curve crosses 50% of control, when it does
  within the tested concentrations;
- the p value of an F-test of the curve against a flat line (the mean):
  ``F = ((SSE_flat - SSE_fit) / 3) / (SSE_fit / (n - 4))``;
- a status: ``fit``; ``no_effect`` (p >= 0.05); ``ic50_above_range`` or
  ``ic50_below_range`` (the midpoint is beyond the tested concentrations:
  no extrapolated number is reported); ``failed`` (with a message).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

__all__ = ["ALPHA", "HILL_BOUNDS", "IC50_DECADES", "MIN_CONCENTRATIONS", "STATUSES", "DoseFit",
           "fit_ll4", "ll4"]

#: bounds of the hill slope (positive: the curve falls from top to bottom with the dose)
HILL_BOUNDS = (0.05, 20.0)

#: how far beyond the tested concentrations the IC50 may be fitted, in decades
IC50_DECADES = 3.0

#: bounds of top and bottom, in percent of control
PERCENT_BOUNDS = (0.0, 150.0)

#: the significance level of the F-test: a larger p value is ``no_effect``
ALPHA = 0.05

#: the fewest distinct positive concentrations a fit needs
MIN_CONCENTRATIONS = 4

#: every status, in the order the summary names them
STATUSES = ("fit", "no_effect", "ic50_above_range", "ic50_below_range", "failed")

#: starting points of log(ic50) besides the data's own: fractions of the tested log range
_STARTS = (0.5,)


def ll4(x, top: float, bottom: float, hill: float, ic50: float) -> np.ndarray:
    """The LL.4 curve at concentrations ``x`` (``top`` at ``x = 0``)."""
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", over="ignore"):
        return bottom + (top - bottom) / (1.0 + np.exp(hill * (np.log(x) - np.log(ic50))))


def _model(log_x, bottom, top, hill, log_ic50):
    with np.errstate(over="ignore"):
        return bottom + (top - bottom) / (1.0 + np.exp(hill * (log_x - log_ic50)))


def _jacobian(log_x, bottom, top, hill, log_ic50):
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(hill * (log_x - log_ic50))
        inv = 1.0 / (1.0 + e)
        slope = np.where(e > 0, (top - bottom) * e * inv * inv, 0.0)  # 0 at x = 0
        d_hill = np.where(e > 0, -slope * (log_x - log_ic50), 0.0)
    return np.column_stack([1.0 - inv, inv, d_hill, slope * hill])


@dataclass(frozen=True)
class DoseFit:
    """One compound's fit (see the module); NaN where a number does not apply.

    ``ic50``, ``ic50_low`` and ``ic50_high`` are given for the status
    ``fit`` only; ``top``, ``bottom`` and ``hill`` whenever the curve was
    fitted (also ``no_effect`` and out of range); ``x_min`` and ``x_max``
    are the lowest and highest positive concentrations tested.
    """

    status: str
    top: float = np.nan
    bottom: float = np.nan
    hill: float = np.nan
    ic50: float = np.nan
    ic50_low: float = np.nan
    ic50_high: float = np.nan
    ic50_absolute: float = np.nan
    rmse: float = np.nan
    p_value: float = np.nan
    x_min: float = np.nan
    x_max: float = np.nan
    fitted_ic50: float = np.nan
    message: str = ""

    @property
    def has_curve(self) -> bool:
        """Whether there is a curve to draw (a fit with an effect, in range or not)."""
        return self.status in ("fit", "ic50_above_range", "ic50_below_range")

    @property
    def ic50_text(self) -> str:
        """The IC50 as a table says it: ``'0.42'``, ``'> 30'``, ``'< 0.001'`` or ``''``."""
        if self.status == "fit":
            return f"{self.ic50:.3g}"
        if self.status == "ic50_above_range":
            return f"> {self.x_max:g}"
        if self.status == "ic50_below_range":
            return f"< {self.x_min:g}"
        return ""

    def curve(self, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)``: the fitted curve over the tested concentrations (log-spaced), or empty."""
        if not self.has_curve:
            return np.empty(0), np.empty(0)
        x = np.geomspace(self.x_min, self.x_max, n)
        return x, ll4(x, self.top, self.bottom, self.hill, self.fitted_ic50)


def fit_ll4(concentration, percent) -> DoseFit:
    """Fit LL.4 to one compound's wells.

    Parameters
    ----------
    concentration, percent : array-like of float, shape (n,)
        One value per well: its concentration (0 allowed: the curve's top)
        and its percent of control. Pairs with a NaN are left out.

    Returns
    -------
    DoseFit
        ``failed`` with a message when there are fewer than
        :data:`MIN_CONCENTRATIONS` positive concentrations, no more wells
        than parameters, or curve_fit finds no fit.
    """
    from scipy import optimize, stats

    x = np.asarray(concentration, dtype=float)
    y = np.asarray(percent, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y) & (x >= 0)
    x, y = x[keep], y[keep]
    positive = np.unique(x[x > 0])
    if len(positive) < MIN_CONCENTRATIONS or len(x) <= 4:
        return DoseFit("failed", x_min=positive.min() if len(positive) else np.nan,
                       x_max=positive.max() if len(positive) else np.nan,
                       message=f"{len(positive)} concentration(s) above 0 and {len(x)} well(s); "
                               f"a fit needs {MIN_CONCENTRATIONS} concentrations and 5 wells")
    x_min, x_max = float(positive[0]), float(positive[-1])
    with np.errstate(divide="ignore"):
        log_x = np.log(x)
    lo, hi = np.log(x_min), np.log(x_max)
    span = IC50_DECADES * np.log(10.0)
    lower = [PERCENT_BOUNDS[0], PERCENT_BOUNDS[0], HILL_BOUNDS[0], lo - span]
    upper = [PERCENT_BOUNDS[1], PERCENT_BOUNDS[1], HILL_BOUNDS[1], hi + span]
    top0 = float(np.clip(y[x <= x_min].mean(), *PERCENT_BOUNDS))
    bottom0 = float(np.clip(y[x == x_max].mean(), *PERCENT_BOUNDS))
    best = None
    for start in (_crossing(log_x, y, (top0 + bottom0) / 2), *(lo + f * (hi - lo)
                                                               for f in _STARTS)):
        p0 = [bottom0, top0, 1.0, float(np.clip(start, lo, hi))]
        try:
            with warnings.catch_warnings():  # a covariance that cannot be estimated: inf
                warnings.simplefilter("ignore", optimize.OptimizeWarning)
                popt, pcov = optimize.curve_fit(_model, log_x, y, p0=p0, bounds=(lower, upper),
                                                jac=_jacobian, method="trf", max_nfev=2000)
        except (RuntimeError, ValueError):
            continue
        sse = float(np.sum((y - _model(log_x, *popt)) ** 2))
        if best is None or sse < best[0]:
            best = (sse, popt, pcov)
    if best is None:
        return DoseFit("failed", x_min=x_min, x_max=x_max,
                       message="curve_fit found no fit from any starting point")
    sse, (bottom, top, hill, log_ic50), pcov = best
    n = len(y)
    sse_flat = float(np.sum((y - y.mean()) ** 2))
    if sse == 0.0:
        p_value = 0.0 if sse_flat > 0 else 1.0
    else:
        f_stat = max(sse_flat - sse, 0.0) / 3.0 / (sse / (n - 4))
        p_value = float(stats.f.sf(f_stat, 3, n - 4))
    common = dict(top=float(top), bottom=float(bottom), hill=float(hill),
                  rmse=float(np.sqrt(sse / n)), p_value=p_value, x_min=x_min, x_max=x_max,
                  fitted_ic50=float(np.exp(log_ic50)))
    absolute = _absolute_ic50(top, bottom, hill, float(np.exp(log_ic50)), x_min, x_max)
    if p_value >= ALPHA:
        return DoseFit("no_effect", **common)
    if log_ic50 > hi:
        return DoseFit("ic50_above_range", ic50_absolute=absolute, **common)
    if log_ic50 < lo:
        return DoseFit("ic50_below_range", ic50_absolute=absolute, **common)
    se = float(np.sqrt(pcov[3, 3])) if np.isfinite(pcov[3, 3]) and pcov[3, 3] >= 0 else np.nan
    t = float(stats.t.ppf(0.975, n - 4))
    with np.errstate(over="ignore"):  # an interval wider than floats: infinite
        low, high = np.exp(log_ic50 - t * se), np.exp(log_ic50 + t * se)
    return DoseFit("fit", ic50=float(np.exp(log_ic50)), ic50_low=float(low),
                   ic50_high=float(high), ic50_absolute=absolute, **common)


def _crossing(log_x, y, level: float) -> float:
    """Log concentration where the wells' means by concentration first cross ``level``."""
    finite = np.isfinite(log_x)
    xs = np.unique(log_x[finite])
    means = np.array([y[log_x == v].mean() for v in xs])
    above = means >= level
    change = np.flatnonzero(above[:-1] != above[1:])
    return float(xs[change[0]] + xs[change[0] + 1]) / 2 if len(change) else float(xs.mean())


def _absolute_ic50(top, bottom, hill, ic50, x_min, x_max) -> float:
    """Where the curve is 50% of control, inside ``[x_min, x_max]``; NaN when it is not there."""
    if not (min(top, bottom) < 50.0 < max(top, bottom)):
        return np.nan
    x = ic50 * ((top - 50.0) / (50.0 - bottom)) ** (1.0 / hill)
    return float(x) if x_min <= x <= x_max else np.nan
