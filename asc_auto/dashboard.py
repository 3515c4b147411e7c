"""What optuna-dashboard shows of a study, written where it reads it, beside what Optuna reads.

Checked in the installed sources (optuna 5.0.0, optuna-dashboard 0.21.0):

- **The objective's name.** The dashboard titles the value axis and columns with the study's
  system attr `study:metric_names` (`_named_objectives.get_objective_names`), which
  `Study.set_metric_names` writes; without it a study's value is "Objective 0".
- **The size limit.** Optuna 5's `Trial.set_constraint(name, v)` writes the system attr
  `constraints:<name>`; TPE and `FrozenTrial.constraints` read those and also the older list
  under `constraints` (`study._constrained_optimization._get_constraints_from_system_attrs`).
  The dashboard reads only that list (`_serializer.serialize_frozen_trial`: `constraints`), so a
  size limit set the modern way was invisible there. `record_constraints` writes both: the named
  constraints and the list, in the same order. TPE then sees every constraint twice with the
  same value: feasibility (all <= 0) is unchanged, and so is the order of infeasible trials
  (TPE ranks them by the sum of their positive violations, here each sum doubled).
- **Infeasible trials out of the value plots.** A configuration over a limit is never trained,
  so it has no accuracy. It is recorded PRUNED without a value (search.py), not COMPLETE with a
  made-up 0: the dashboard's history, slice, contour, parallel-coordinate and importance views
  take COMPLETE trials (and pruned ones only at a value they reported), so a 0 no longer drags
  them down. TPE learns from it all the same: its split puts every trial with a positive
  constraint, COMPLETE or PRUNED, in the infeasible group (`_tpe.sampler._split_trials`).
  The trial list still shows it, with its constraints and its `feasible: false` attribute.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import optuna

OBJECTIVE_NAME = "validation accuracy"  # the study's one value: accuracy at deployed precision
DASHBOARD_CONSTRAINTS = "constraints"  # the system attr optuna-dashboard 0.21 reads (a list)


def name_objective(study: optuna.Study) -> None:
    """Name the study's value for the dashboard (and Optuna's own plots)."""
    with warnings.catch_warnings():  # "experimental" since Optuna 3.2, and works
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([OBJECTIVE_NAME])


def record_constraints(trial: optuna.Trial, constraints: Mapping[str, float]) -> None:
    """Set each named constraint (what TPE reads) and the list the dashboard reads."""
    for name, value in constraints.items():
        trial.set_constraint(name, float(value))
    trial.storage.set_trial_system_attr(trial._trial_id, DASHBOARD_CONSTRAINTS,
                                        [float(v) for v in constraints.values()])
