"""A node's survival targets: checked durations and events, and the duration-leak check.

Targets are a float32 array ``(rows, 2)``: column 0 the duration, column 1 the event (1.0 event,
0.0 censored). Every refusal is one line naming the file, the column and the rule, never a value.

Leak check (a correlation test on the node, run before any training): a numeric feature whose
Spearman rank correlation with the duration, or with the duration times another numeric feature
(``cumulative spend ~ tenure x monthly charge``), is at least :data:`LEAK_RHO` is a
deterministic function of the duration and is refused. A feature the task spec declares in
``duration_derived`` is not refused: the node logs a warning naming it instead.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from confide.modeling.encoding import _missing_mask, _row_hint
from confide.modeling.errors import DataError
from confide.modeling.survival_spec import SurvivalTaskSpec
from confide.modeling.task_spec import NumericFeature, _label_value

__all__ = ["LEAK_RHO", "SURVIVAL_LOGGER", "duration_leaks", "encode_survival_targets"]

#: Rank correlation at or above which a feature counts as a function of the duration.
LEAK_RHO = 0.995
#: A child of Flower's logger, so the warning lands in the node's run log.
SURVIVAL_LOGGER = "flwr.confide.survival"
_log = logging.getLogger(SURVIVAL_LOGGER)


def _durations(frame: pd.DataFrame, spec: SurvivalTaskSpec, source: str) -> np.ndarray:
    name = spec.duration.name
    if name not in frame.columns:
        raise DataError(f"{source}: duration column '{name}' is missing (rule: survival task)")
    values = frame[name]
    missing = _missing_mask(values)
    if missing.any():
        raise DataError(
            f"{source}: duration '{name}' is empty in {_row_hint(missing)} (rule: SURV-DURATION)"
        )
    parsed = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(parsed)
    if bad.any():
        raise DataError(
            f"{source}: duration '{name}' is non-numeric in {_row_hint(bad)} (rule: SURV-DURATION)"
        )
    negative = parsed < 0
    if negative.any():
        raise DataError(
            f"{source}: duration '{name}' is negative in {_row_hint(negative)} "
            "(rule: SURV-DURATION)"
        )
    outside = (parsed < spec.duration.min) | (parsed > spec.duration.max)
    if outside.any():
        raise DataError(
            f"{source}: duration '{name}' lies outside the declared [min, max] in "
            f"{_row_hint(outside)} (rule: SURV-DURATION bounds)"
        )
    return parsed


def _events(frame: pd.DataFrame, spec: SurvivalTaskSpec, source: str) -> np.ndarray:
    name = spec.label.name
    if name not in frame.columns:
        raise DataError(f"{source}: event column '{name}' is missing (rule: survival task)")
    values = frame[name]
    missing = _missing_mask(values)
    if missing.any():
        raise DataError(
            f"{source}: event '{name}' is empty in {_row_hint(missing)} (rule: SURV-EVENT)"
        )
    canonical = values.map(_label_value).to_numpy(dtype=object)
    event = canonical == spec.label.positive
    other = ~(event | (canonical == spec.label.negative))
    if other.any():
        raise DataError(
            f"{source}: event '{name}' has values other than the declared event and censored "
            f"values in {_row_hint(other)} (rule: SURV-EVENT)"
        )
    return event


def _ranks(values: np.ndarray) -> np.ndarray:
    ranked = pd.Series(values).rank(method="average").to_numpy()
    centred = ranked - ranked.mean()
    norm = np.sqrt((centred**2).sum())
    return centred / norm if norm > 0 else np.zeros_like(centred)


def duration_leaks(
    frame: pd.DataFrame, spec: SurvivalTaskSpec, duration: np.ndarray
) -> list[tuple[str, str]]:
    """``(feature, relation)`` for every numeric feature that is a function of the duration
    (relation ``"duration"`` or ``"duration x <other feature>"``), by rank correlation."""
    numeric: dict[str, np.ndarray] = {}
    for feat in spec.features:
        if isinstance(feat, NumericFeature) and feat.name in frame.columns:
            parsed = pd.to_numeric(frame[feat.name], errors="coerce").to_numpy(dtype=float)
            if np.isfinite(parsed).all():
                numeric[feat.name] = parsed
    if len(duration) < 3 or not numeric:
        return []
    names = list(numeric)
    ranks = np.column_stack([_ranks(numeric[n]) for n in names])
    leaks: list[tuple[str, str]] = []
    rho = ranks.T @ _ranks(duration)
    products = np.column_stack([_ranks(duration * numeric[n]) for n in names])
    cross = ranks.T @ products  # [f, g]: rank correlation of f with duration x g
    between = ranks.T @ ranks  # [f, g]: f against g alone (a plain copy is not a leak)
    for i, name in enumerate(names):
        if abs(rho[i]) >= LEAK_RHO:
            leaks.append((name, "duration"))
            continue
        for j, other in enumerate(names):
            if i != j and abs(cross[i, j]) >= LEAK_RHO and abs(between[i, j]) < LEAK_RHO:
                leaks.append((name, f"duration x {other}"))
                break
    return leaks


def encode_survival_targets(frame: pd.DataFrame, spec: SurvivalTaskSpec, source: str) -> np.ndarray:
    """Checked ``(duration, event)`` rows as float32; refuses bad values and undeclared leaks."""
    duration = _durations(frame, spec, source)
    event = _events(frame, spec, source)
    for name, relation in duration_leaks(frame, spec, duration):
        if name in spec.duration_derived:
            _log.warning(
                "%s: feature '%s' is declared duration_derived and tracks %s (rule: SURV-LEAK)",
                source,
                name,
                relation,
            )
        else:
            raise DataError(
                f"{source}: feature '{name}' is a deterministic function of {relation} "
                "(rank correlation >= 0.995; declare it in duration_derived or drop it) "
                "(rule: SURV-LEAK)"
            )
    return np.column_stack([duration, event.astype(float)]).astype(np.float32)
