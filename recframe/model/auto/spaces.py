"""The kNN search spaces of ``model=auto``, scaled to the data (:class:`~recframe.model.profile.DataProfile`).

Published tuned parameters move from one data set to the next with a few properties of the data,
so the ranges are set from those properties instead of fixed numbers:

* neighbours ``k`` and candidates ``sample_size`` grow with the number of training sessions (a
  tiny data set has no 500 useful neighbours; a large one needs thousands of candidates);
* STAN's position decays (``lambda_spw``, ``lambda_inh``, ``lambda_ipw``) are in clicks, so they
  range around the mean session length (the STAN paper sets them relative to it);
* the recency decay ``lambda_snh`` is a share of the training time span (0.01 to 100 spans, the
  top being in effect no decay), converted to days with the profile's units per day, so it means
  the same whether ``ts`` is epoch milliseconds, seconds or an ordinal;
* idf weighting matters more when popular items dominate; it is searched over a few levels
  including off.

Each space has a start point (the single models' data-scaled defaults, clipped to the ranges): the
first trial of every model, so the search never ends below the defaults a user would get with
``model=stan`` and friends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna

from recframe.model.knn.weights import WEIGHTINGS
from recframe.model.scaling import knn_defaults

KNN_MODELS = ("sknn", "vsknn", "stan", "vstan")
MS_PER_DAY = 86_400_000.0


def _limits(profile: Any) -> dict[str, float]:
    sessions = max(int(profile.sessions), 2)
    length = max(float(profile.mean_length), 1.0)
    span = float(profile.ts_span or 0.0)
    per_day = float(profile.ts_per_day_guess or 0.0) or MS_PER_DAY
    return {
        "k_hi": max(20, min(1000, sessions // 10)),
        "ss_lo": min(200, sessions),
        "ss_hi": max(min(200, sessions), min(10_000, sessions)),
        "len_lo": min(0.5, length / 4),
        "len_hi": max(4.0, length * 4),
        "span_days": span / per_day,
        "per_day": per_day,
    }


def _neighbours(trial: optuna.trial.Trial, lim: dict[str, float]) -> dict[str, Any]:
    k = trial.suggest_int("k", 10, int(lim["k_hi"]), log=True)
    ss = trial.suggest_int("sample_size", int(lim["ss_lo"]), int(lim["ss_hi"]), log=True)
    return {"k": k, "sample_size": max(ss, k)}


def _decay(trial: optuna.trial.Trial, name: str, lim: dict[str, float]) -> float:
    return trial.suggest_float(name, lim["len_lo"], lim["len_hi"], log=True)


def _recency(trial: optuna.trial.Trial, lim: dict[str, float]) -> dict[str, Any]:
    if lim["span_days"] <= 0:
        return {"lambda_snh": None, "ts_per_day": lim["per_day"]}
    share = trial.suggest_float("recency_share", 0.01, 100.0, log=True)
    return {"lambda_snh": share * lim["span_days"], "ts_per_day": lim["per_day"]}


def sknn(trial: optuna.trial.Trial, profile: Any) -> dict[str, Any]:
    lim = _limits(profile)
    return {**_neighbours(trial, lim), "similarity": trial.suggest_categorical("similarity", ["cosine", "jaccard"])}


def vsknn(trial: optuna.trial.Trial, profile: Any) -> dict[str, Any]:
    lim = _limits(profile)
    return {
        **_neighbours(trial, lim),
        "weighting": trial.suggest_categorical("weighting", list(WEIGHTINGS)),
        "weighting_score": trial.suggest_categorical("weighting_score", list(WEIGHTINGS)),
        "idf_weighting": trial.suggest_categorical("idf_weighting", [0.0, 1.0, 2.0, 5.0, 10.0]),
    }


def stan(trial: optuna.trial.Trial, profile: Any) -> dict[str, Any]:
    lim = _limits(profile)
    return {
        **_neighbours(trial, lim),
        "lambda_spw": _decay(trial, "lambda_spw", lim),
        "lambda_inh": _decay(trial, "lambda_inh", lim),
        **_recency(trial, lim),
    }


def vstan(trial: optuna.trial.Trial, profile: Any) -> dict[str, Any]:
    params = stan(trial, profile)
    lim = _limits(profile)
    params["similarity"] = trial.suggest_categorical("similarity", ["cosine", "vec"])
    params["lambda_ipw"] = _decay(trial, "lambda_ipw", lim)
    params["lambda_idf"] = trial.suggest_categorical("lambda_idf", [0.0, 1.0, 2.0, 5.0, 10.0])
    return params


SPACES: dict[str, Callable[[optuna.trial.Trial, Any], dict[str, Any]]] = {
    "sknn": sknn,
    "vsknn": vsknn,
    "stan": stan,
    "vstan": vstan,
}


def start_point(name: str, profile: Any) -> dict[str, Any]:
    """The first trial of ``name``: the data-scaled single-model defaults (:func:`recframe.model.scaling.knn_defaults`)
    and session-rec's other defaults, clipped into the search ranges."""
    lim = _limits(profile)
    scaled = knn_defaults(name, profile)
    k = int(min(max(scaled["k"], 10), lim["k_hi"]))
    point: dict[str, Any] = {"k": k, "sample_size": int(min(max(scaled["sample_size"], lim["ss_lo"]), lim["ss_hi"]))}
    clip = lambda v: float(min(max(v, lim["len_lo"]), lim["len_hi"]))  # noqa: E731
    if name == "sknn":
        point["similarity"] = "cosine"
    elif name == "vsknn":
        point.update(weighting="div", weighting_score="div", idf_weighting=0.0)
    else:
        point.update(lambda_spw=clip(1.02), lambda_inh=clip(2.05))
        if lim["span_days"] > 0:  # session-rec's 5 days on a clock; 5 training spans on an ordinal
            known = profile.ts_per_day_guess is not None
            point["recency_share"] = float(min(max(5.0 / lim["span_days"], 0.01), 100.0)) if known else 5.0
        if name == "vstan":
            point.update(similarity="cosine", lambda_ipw=clip(1.02), lambda_idf=5.0)
    return point
