"""Percent of control, robust z, Z' per plate, conditions and dose-response per compound.

:func:`analyze` joins a :class:`~.layouts.Layout` to a run's images and works
out, with pandas:

- per well (the images of a well summed up as in ``wells.csv``): the mean
  nuclei per image; ``percent_of_control = 100 * mean / m``, ``m`` the mean
  of the negative-control wells' means on the same plate; ``robust_z = (mean
  - median) / (1.4826 * MAD)`` of those negative-control wells' means;
- per plate: the control wells' means and standard deviations, ``Z' = 1 -
  3 (sd_p + sd_n) / |mean_p - mean_n|`` over the control wells' means, a
  robust Z' (medians and 1.4826 x MAD in their place) and a verdict
  (:func:`verdict`);
- per condition (compound x concentration, over plates as replicates):
  wells, images, mean and standard deviation of percent of control;
- per compound: a four-parameter log-logistic fit (:mod:`.dose_response`).

Wells are grouped per plate (and per time point when the names give time
points). Standard deviations are sample ones (``ddof=1``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..io.discovery import natural_key
from ..results.wells import well_table
from .dose_response import DoseFit, fit_ll4
from .layouts import LAYOUT_COLUMNS, Layout, LayoutError, normalise_well

__all__ = ["MAD_SCALE", "Analysis", "analyze", "parse_positive", "verdict"]

log = logging.getLogger(__name__)

#: the MAD of a normal sample times this is its standard deviation
MAD_SCALE = 1.4826

#: columns of :attr:`Analysis.plates`
PLATE_COLUMNS = ("plate", "n_negative", "n_positive", "negative_mean", "negative_sd",
                 "positive_mean", "positive_sd", "z_prime", "robust_z_prime", "verdict")

#: columns of :attr:`Analysis.conditions` (extras after them)
CONDITION_COLUMNS = ("compound", "concentration", "unit", "control", "n_plates", "n_wells",
                     "n_images", "percent_of_control_mean", "percent_of_control_sd")

#: columns of :attr:`Analysis.dose_response` (annotations per compound after them)
DOSE_COLUMNS = ("compound", "unit", "n_concentrations", "n_wells", "top", "bottom", "hill",
                "ic50", "ic50_low", "ic50_high", "ic50_absolute", "rmse", "p_value", "status",
                "ic50_text", "message")

#: columns of :meth:`Analysis.points`
POINT_COLUMNS = ("plate", "well", "concentration", "percent_of_control", "images")

#: wells listed by name in a message, at most
_NAMED = 5


def verdict(z_prime: float) -> str:
    """``'excellent'`` (>= 0.5), ``'usable'`` (0 to 0.5), ``'unusable'`` (< 0); ``''`` for NaN."""
    if not np.isfinite(z_prime):
        return ""
    return "excellent" if z_prime >= 0.5 else "usable" if z_prime >= 0 else "unusable"


def parse_positive(text: str) -> tuple[str, float | None]:
    """``'taxol@0.3'`` -> ``('taxol', 0.3)``; ``'taxol'`` -> ``('taxol', None)``.

    Raises
    ------
    LayoutError
        When the part after ``@`` is not a number.
    """
    name, sep, conc = text.rpartition("@")
    if not sep:
        return text.strip(), None
    try:
        value = float(conc)
    except ValueError:
        raise LayoutError(f"the positive control {text!r} is NAME or NAME@CONCENTRATION; "
                          f"{conc!r} is not a number") from None
    if not np.isfinite(value) or value < 0:
        raise LayoutError(f"the concentration of the positive control {text!r} must be a "
                          "number, 0 or more")
    return name.strip(), value


@dataclass
class Analysis:
    """The result of :func:`analyze`.

    Attributes
    ----------
    wells : pandas.DataFrame
        ``wells_annotated.csv``: ``plate``, ``well`` (``timepoint``),
        ``images``, ``total``, ``mean``, ``std``, the layout's columns
        (``control`` is the role each well played: ``negative``,
        ``positive`` or ``''``), its extras, the annotations,
        ``percent_of_control``, ``robust_z``, then ``in_layout`` (whether
        the layout names the well: the others are left out of the
        conditions, the fits and ``wells_annotated.csv``).
    plates : pandas.DataFrame
        ``plates.csv`` (:data:`PLATE_COLUMNS`; ``timepoint`` after ``plate``
        when there are time points).
    conditions : pandas.DataFrame
        ``conditions.csv`` (:data:`CONDITION_COLUMNS`, then the extras that
        are the same in every well of a condition).
    dose_response : pandas.DataFrame
        ``dose_response.csv`` (:data:`DOSE_COLUMNS`, then the annotations
        that are the same for every well of a compound).
    images : pandas.DataFrame
        The images given (same index), ``plate`` and ``well`` as joined, with
        ``compound``, ``concentration``, ``unit`` and ``control``.
    layout : Layout
    controls : dict
        ``{'negative': ..., 'positive': ...}``: which wells were the controls, in words.
    warnings : list of str
        Problems that did not stop the analysis (also logged).
    fits : dict
        ``{compound: DoseFit}``.
    """

    wells: pd.DataFrame
    plates: pd.DataFrame
    conditions: pd.DataFrame
    dose_response: pd.DataFrame
    images: pd.DataFrame
    layout: Layout
    controls: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    fits: dict[str, DoseFit] = field(default_factory=dict)

    def curve(self, compound: str, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)``: a compound's fitted curve over its tested concentrations, or empty arrays.

        There is a curve for the statuses ``fit``, ``ic50_above_range`` and
        ``ic50_below_range``.
        """
        fit = self.fits.get(compound)
        return fit.curve(n) if fit is not None else (np.empty(0), np.empty(0))

    def points(self, compound: str) -> pd.DataFrame:
        """A compound's wells as a dose-response figure draws them.

        Returns
        -------
        pandas.DataFrame
            ``plate``, ``well``, ``concentration``, ``percent_of_control``,
            ``images`` of the compound's wells with a concentration above 0
            and a percent of control, in the order they are drawn.
        """
        w = self.wells
        sel = w[_fitted_wells(w) & (w["compound"] == compound) & (w["concentration"] > 0)]
        return sel[list(POINT_COLUMNS)].reset_index(drop=True)

    def all_points(self) -> dict[str, pd.DataFrame]:
        """Every compound's :meth:`points` at once: compound -> its wells (none: absent)."""
        w = self.wells
        sel = w[_fitted_wells(w) & (w["concentration"] > 0)]
        return {compound: group[list(POINT_COLUMNS)].reset_index(drop=True)
                for compound, group in sel.groupby("compound", sort=False)}


def _fitted_wells(wells: pd.DataFrame) -> pd.Series:
    """Wells that count for a compound's curve: in the layout, not negative, with a value."""
    return (wells["in_layout"] & (wells["compound"] != "") & (wells["control"] != "negative")
            & wells["concentration"].notna() & wells["percent_of_control"].notna())


# --------------------------------------------------------------------------- the join


def _join_files(images: pd.DataFrame, layout: Layout, warnings: list[str]) -> pd.DataFrame:
    """``plate`` and ``well`` of each image: the per-image table's when it names the file."""
    plate = images["plate"].fillna("").astype(str).str.strip() if "plate" in images else \
        pd.Series("", index=images.index)
    well = images["well"].fillna("").astype(str).map(normalise_well)
    if layout.files is None:
        return pd.DataFrame({"plate": plate, "well": well}, index=images.index)
    paths = images["path"].astype(str).str.replace("\\", "/", regex=False)
    paths = paths.str.replace(r"#\d+$", "", regex=True)  # FILE#SCENE
    names = paths.map(os.path.basename)
    files = layout.files
    unique = files.drop_duplicates("file", keep=False).set_index("file")
    plate = plate.copy()
    well = well.copy()
    hit = names.isin(unique.index)
    plate[hit] = names[hit].map(unique["plate"])
    well[hit] = names[hit].map(unique["well"])
    ambiguous = 0
    shared = files[files.duplicated("file", keep=False)]
    if len(shared):  # one name in several folders: the folder that ends the image's path
        for i in names.index[names.isin(shared["file"]) & ~hit]:
            rows = shared[shared["file"] == names[i]]
            parent = paths[i].rsplit("/", 1)[0] if "/" in paths[i] else ""
            fits = rows[[bool(f) and (parent == f.strip("/") or parent.endswith("/" + f.strip("/")))
                         for f in rows["folder"].str.replace("\\", "/", regex=False)]]
            if len(fits) == 1:
                plate[i], well[i] = fits["plate"].iloc[0], fits["well"].iloc[0]
                hit[i] = True
            else:
                ambiguous += 1
    missing = int((~hit).sum())
    if missing:
        text = (f"{missing} of {len(images)} images are not in the per-image table "
                f"{layout.path.name}; their plate and well come from their names")
        if ambiguous:
            text += (f" ({ambiguous} of them have a name the table lists in several folders, "
                     "none of which ends their path)")
        warnings.append(text)
    return pd.DataFrame({"plate": plate, "well": well}, index=images.index)


def _attach_layout(wells: pd.DataFrame, layout: Layout) -> pd.DataFrame:
    """The layout's columns on each well: a plate's own row first, then the every-plate row."""
    spec = layout.wells
    cols = [c for c in spec.columns if c not in ("plate", "well")]
    own = wells[["plate", "well"]].merge(spec[spec["plate"] != ""], on=["plate", "well"],
                                         how="left", indicator="_own")
    every = wells[["well"]].merge(spec[spec["plate"] == ""].drop(columns="plate"), on="well",
                                  how="left", indicator="_every")
    use_own = (own["_own"] == "both").to_numpy()
    out = wells.reset_index(drop=True).copy()
    for c in cols:
        out[c] = np.where(use_own, own[c].to_numpy(dtype=object), every[c].to_numpy(dtype=object))
    out["in_layout"] = use_own | (every["_every"] == "both").to_numpy()
    out["concentration"] = pd.to_numeric(out["concentration"], errors="coerce").astype(float)
    for c in cols:
        if c != "concentration":
            out[c] = out[c].where(out["in_layout"], "").fillna("").astype(str)
    return out


def _check_missing(wells: pd.DataFrame, layout: Layout) -> None:
    """Refuse a layout naming wells of the results' plates that the results lack."""
    if layout.kind == "images":  # it names files: the others are other runs' images
        return
    spec = layout.wells
    plates = sorted(set(wells["plate"]), key=natural_key)
    have = set(zip(wells["plate"], wells["well"], strict=True))
    wanted = [(p, w) for p, w in zip(spec["plate"], spec["well"], strict=True) if p in plates]
    generic = spec.loc[spec["plate"] == "", "well"].tolist()
    wanted += [(p, w) for p in plates for w in generic]
    lacking = [(p, w) for p, w in wanted if (p, w) not in have]
    if not lacking:
        return
    named = ", ".join(f"{w}" + (f" of plate {p}" if p else "") for p, w in lacking[:_NAMED])
    more = f" and {len(lacking) - _NAMED} more" if len(lacking) > _NAMED else ""
    raise LayoutError(f"the layout {layout.path.name} names {len(lacking)} well(s) that the "
                      f"results lack: {named}{more}")


# --------------------------------------------------------------------------- controls


def _controls(wells: pd.DataFrame, negative: str | None, positive: str | None
              ) -> tuple[pd.Series, dict]:
    """The role of each well (``negative``, ``positive``, ``''``) and the controls in words."""
    compound = wells["compound"].str.casefold()
    layout_role = wells["control"]
    if negative is None:
        neg = (layout_role == "negative") | (compound == "dmso")
        neg_text = "control = negative, or compound DMSO"
    else:
        neg = compound == negative.strip().casefold()
        neg_text = f"compound {negative.strip()}"
        if not neg.any():
            raise LayoutError(f"the negative control {negative!r} is not a compound of the "
                              f"layout's wells ({_compounds(wells)})")
    if positive is None:
        pos = layout_role == "positive"
        pos_text = "control = positive"
    else:
        name, conc = parse_positive(positive)
        pos = compound == name.casefold()
        pos_text = f"compound {name}"
        if conc is not None:
            pos &= np.isclose(wells["concentration"].fillna(-1.0), conc, rtol=1e-6, atol=0)
            pos_text += f" at {conc:g}"
        if not pos.any():
            raise LayoutError(f"the positive control {positive!r} names no well of the layout "
                              f"(its compounds: {_compounds(wells)})")
    both = neg & pos & wells["in_layout"]
    if both.any():
        i = both.idxmax()
        raise LayoutError(f"well {wells['well'][i]} of plate {wells['plate'][i]} is both the "
                          "negative and the positive control; name them with --negative and "
                          "--positive")
    role = pd.Series(np.where(neg, "negative", np.where(pos, "positive", "")), index=wells.index)
    role = role.where(wells["in_layout"], "")
    return role, {"negative": neg_text, "positive": pos_text}


def _compounds(wells: pd.DataFrame) -> str:
    names = sorted({c for c in wells["compound"] if c}, key=natural_key)
    return ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "") \
        or "none"


# --------------------------------------------------------------------------- statistics


def _mad(values: pd.Series) -> float:
    v = values.dropna().to_numpy(dtype=float)
    return float(np.median(np.abs(v - np.median(v)))) if len(v) else np.nan


def _normalise(wells: pd.DataFrame, keys: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Percent of control and robust z per well; the plates table."""
    mean = wells["mean"].astype(float)
    rows = []
    percent = pd.Series(np.nan, index=wells.index)
    robust = pd.Series(np.nan, index=wells.index)
    for key, group in wells.groupby(keys, sort=False):
        if not group["in_layout"].any():
            continue  # a plate the layout does not describe
        key = key if isinstance(key, tuple) else (key,)
        neg = mean[group.index[group["control"] == "negative"]].dropna()
        pos = mean[group.index[group["control"] == "positive"]].dropna()
        neg_mean = float(neg.mean()) if len(neg) else np.nan
        neg_median = float(neg.median()) if len(neg) else np.nan
        neg_spread = MAD_SCALE * _mad(neg)
        with np.errstate(divide="ignore", invalid="ignore"):
            percent[group.index] = 100.0 * mean[group.index] / neg_mean if neg_mean else np.nan
            robust[group.index] = ((mean[group.index] - neg_median) / neg_spread
                                   if neg_spread > 0 else np.nan)
        row = dict(zip(keys, key, strict=True))
        row.update(n_negative=len(neg), n_positive=len(pos), negative_mean=neg_mean,
                   negative_sd=float(neg.std(ddof=1)) if len(neg) > 1 else np.nan,
                   positive_mean=float(pos.mean()) if len(pos) else np.nan,
                   positive_sd=float(pos.std(ddof=1)) if len(pos) > 1 else np.nan)
        row["z_prime"] = _z_prime(row["positive_sd"], row["negative_sd"], row["positive_mean"],
                                  neg_mean)
        row["robust_z_prime"] = _z_prime(MAD_SCALE * _mad(pos), neg_spread,
                                         float(pos.median()) if len(pos) else np.nan, neg_median)
        row["verdict"] = verdict(row["z_prime"])
        rows.append(row)
    columns = [*keys, *PLATE_COLUMNS[1:]]
    plates = pd.DataFrame(rows, columns=columns)
    plates = plates.astype({"n_negative": "int64", "n_positive": "int64"})
    return plates, pd.DataFrame({"percent_of_control": percent, "robust_z": robust})


def _z_prime(sd_p, sd_n, mean_p, mean_n) -> float:
    gap = abs(mean_p - mean_n)
    if not (np.isfinite(sd_p) and np.isfinite(sd_n) and np.isfinite(gap)) or gap == 0:
        return np.nan
    return float(1.0 - 3.0 * (sd_p + sd_n) / gap)


def _constant(group: pd.DataFrame, cols: list[str]) -> dict:
    """The columns whose value is the same in every row of ``group``."""
    return {c: group[c].iloc[0] for c in cols if group[c].nunique(dropna=False) == 1}


def _conditions(wells: pd.DataFrame, extras: list[str]) -> pd.DataFrame:
    sel = wells[wells["in_layout"]]
    keys = ["compound", "concentration", "unit", "control"]
    groups = sel.groupby(keys, sort=False, dropna=False)
    table = groups.agg(n_plates=("plate", "nunique"), n_wells=("well", "size"),
                       n_images=("images", "sum"),
                       percent_of_control_mean=("percent_of_control", "mean"),
                       percent_of_control_sd=("percent_of_control", "std"))
    if extras:  # extras that are the same in every well of every condition
        same = groups[extras].nunique(dropna=False).le(1).all()
        kept = [c for c in extras if same[c]]
        table = table.join(groups[kept].first())
    table = table.reset_index()
    order = sorted(range(len(table)), key=lambda i: (
        {"negative": 0, "positive": 1}.get(table["control"].iat[i], 2),
        natural_key(str(table["compound"].iat[i])), _number(table["concentration"].iat[i])))
    return table.iloc[order].reset_index(drop=True).astype(
        {"n_plates": "int64", "n_wells": "int64", "n_images": "int64"})


def _number(value) -> float:
    return float(value) if pd.notna(value) else -1.0


def _dose_response(wells: pd.DataFrame, per_compound: list[str]
                   ) -> tuple[pd.DataFrame, dict[str, DoseFit]]:
    sel = wells[_fitted_wells(wells)]
    rows, fits = [], {}
    for compound, g in sel.groupby("compound", sort=False):
        if (g["control"] == "positive").all():
            continue  # a control only, not a series
        fit = fit_ll4(g["concentration"], g["percent_of_control"])
        fits[compound] = fit
        units = sorted({u for u in g["unit"] if u})
        row = {"compound": compound, "unit": ", ".join(units),
               "n_concentrations": int(g.loc[g["concentration"] > 0, "concentration"].nunique()),
               "n_wells": len(g), "top": fit.top, "bottom": fit.bottom, "hill": fit.hill,
               "ic50": fit.ic50, "ic50_low": fit.ic50_low, "ic50_high": fit.ic50_high,
               "ic50_absolute": fit.ic50_absolute, "rmse": fit.rmse, "p_value": fit.p_value,
               "status": fit.status, "ic50_text": fit.ic50_text, "message": fit.message}
        all_wells = wells[wells["in_layout"] & (wells["compound"] == compound)]
        row.update(_constant(all_wells, per_compound))
        rows.append(row)
    table = pd.DataFrame(rows, columns=[*DOSE_COLUMNS, *per_compound])
    keep = [c for c in table.columns if c in DOSE_COLUMNS or table[c].notna().all()]
    table = table[keep]
    order = sorted(range(len(table)), key=lambda i: natural_key(table["compound"].iat[i]))
    table = table.iloc[order].reset_index(drop=True)
    return table.astype({"n_concentrations": "int64", "n_wells": "int64"}), fits


def _annotate(wells: pd.DataFrame, annotations: pd.DataFrame) -> list[str]:
    """Add the annotation columns to the wells; returns their names.

    A well takes the row of its compound and concentration when the
    annotations have one; otherwise a column's value of its compound when
    that column has one value per compound.
    """
    cols = [c for c in annotations.columns if c not in ("compound", "concentration")
            and c not in wells.columns]
    ann = annotations.assign(_key=annotations["compound"].str.casefold())
    key = wells["compound"].str.casefold()
    conc = wells["concentration"].to_numpy(dtype=float)
    for c in cols:
        values = pd.Series("", index=wells.index, dtype=object)
        by_compound = ann.groupby("_key")[c].nunique(dropna=False)
        single = ann[ann["_key"].isin(by_compound.index[by_compound == 1])] \
            .drop_duplicates("_key").set_index("_key")[c]
        values[:] = key.map(single).fillna("").to_numpy(dtype=object)
        exact = ann.dropna(subset=["concentration"])
        for k, cc, v in zip(exact["_key"], exact["concentration"], exact[c], strict=True):
            hit = (key == k).to_numpy() & np.isclose(conc, cc, rtol=1e-6, atol=0)
            values[hit] = v
        wells[c] = values.where(wells["in_layout"], "").astype(str)
    return cols


# --------------------------------------------------------------------------- the entry


def analyze(images: pd.DataFrame, layout: Layout, *, negative: str | None = None,
            positive: str | None = None, annotations: pd.DataFrame | None = None) -> Analysis:
    """Join a layout to a run's images; percent of control, Z', conditions, dose-response.

    Parameters
    ----------
    images : pandas.DataFrame
        An images table (``images.csv``, or a results store's): ``path``,
        ``plate``, ``well``, ``n_nuclei``, ``error`` (and ``timepoint``).
    layout : Layout
        From :func:`~.layouts.read_layout`.
    negative : str, optional
        The negative control's compound (any case). Default: the wells
        whose ``control`` is negative, and those of a compound named DMSO.
    positive : str, optional
        ``NAME`` or ``NAME@CONCENTRATION``. Default: the wells whose
        ``control`` is positive.
    annotations : pandas.DataFrame, optional
        From :func:`~.layouts.read_annotations`: more columns per compound
        (and concentration), e.g. BBBC021's mechanism of action ``moa``.

    Returns
    -------
    Analysis

    Raises
    ------
    LayoutError
        When the layout names wells of the results' plates that the results
        lack, no image is in a well of the layout, or a control names no
        well (one sentence each).
    """
    warnings: list[str] = []
    where = _join_files(images, layout, warnings)
    joined = images.assign(plate=where["plate"], well=where["well"])
    wells = well_table(joined)
    _check_missing(wells, layout)
    wells = _attach_layout(wells, layout)
    if not wells["in_layout"].any():
        raise LayoutError(f"no image is in a well of the layout {layout.path.name} (its plates: "
                          f"{_names(layout.wells['plate'])}; the results' plates: "
                          f"{_names(wells['plate'])})")
    outside = wells[~wells["in_layout"]]
    if len(outside):
        n_images = int(joined["well"].isin([""]).sum())
        keyed = list(zip(outside["plate"], outside["well"], strict=True))  # in plate order
        outside_keys = set(keyed)
        n_images += sum(1 for p, w in zip(joined["plate"], joined["well"], strict=True)
                        if (p, w) in outside_keys)
        named = ", ".join(f"{w}" + (f" of plate {p}" if p else "") for p, w in keyed[:_NAMED])
        warnings.append(f"{n_images} image(s) in {len(outside)} well(s) the layout lacks are "
                        f"left out of the analysis ({named}{' ...' if len(keyed) > _NAMED else ''})")
    role, controls = _controls(wells, negative, positive)
    wells["control"] = role
    extras = list(layout.extras)
    per_compound = _annotate(wells, annotations) if annotations is not None else []
    timed = "timepoint" in wells
    keys = ["plate", "timepoint"] if timed else ["plate"]
    plates, norm = _normalise(wells, keys)
    wells = pd.concat([wells, norm], axis=1)
    lacking = plates.loc[plates["n_negative"] == 0, "plate"].tolist()
    if lacking:
        warnings.append(f"{len(lacking)} plate(s) have no negative-control well, so no percent "
                        f"of control: {_names(pd.Series(lacking))} (name the control with "
                        "--negative)")
    conditions = _conditions(wells, extras + per_compound)
    dose, fits = _dose_response(wells, per_compound)
    images_out = images.copy()
    images_out["plate"], images_out["well"] = where["plate"], where["well"]
    lookup = wells.set_index(["plate", "well"])[[*LAYOUT_COLUMNS[2:]]]
    lookup = lookup[~lookup.index.duplicated()]
    idx = pd.MultiIndex.from_arrays([where["plate"], where["well"]])
    for c in LAYOUT_COLUMNS[2:]:
        images_out[c] = lookup[c].reindex(idx).to_numpy()
    images_out["compound"] = images_out["compound"].fillna("")
    images_out["unit"] = images_out["unit"].fillna("")
    images_out["control"] = images_out["control"].fillna("")
    order = [c for c in wells.columns if c not in ("percent_of_control", "robust_z", "in_layout")]
    wells = wells[[*order, "percent_of_control", "robust_z", "in_layout"]]
    for text in warnings:
        log.warning("%s", text)
    return Analysis(wells=wells, plates=plates, conditions=conditions, dose_response=dose,
                    images=images_out, layout=layout, controls=controls, warnings=warnings,
                    fits=fits)


def _names(values: pd.Series) -> str:
    names = sorted({str(v) for v in values}, key=natural_key)
    shown = ", ".join(n or "(none)" for n in names[:_NAMED])
    return shown + (f" and {len(names) - _NAMED} more" if len(names) > _NAMED else "")

