"""`synthesize.method: auto`: choose the recipe by cross-validation on training rows alone.

Protocol (everything here sees only the training pool's features and labels; the
evaluation split never enters):

1. for each of `repeats` draws r, seed_r = derive_seed(run seed, r): a stratified sample of
   at most `max_rows` pool rows, split into `folds` stratified folds (shuffled by seed_r);
2. for each fold: the other folds are the pool part, the fold the held-out part. For each
   candidate recipe the pool part is distilled at the requested `per_class` (seed_r), the
   linear probe (the run's probe settings, hard labels) is trained on the distilled rows and
   scored on the held-out part;
3. each recipe's score is the mean ± std of its `repeats x folds` accuracies; the best mean
   wins, and recipes within `tie_margin` of it tie: the cheaper wins (`RECIPES` order).

With `weights` (`synthesize.auto.weighted`), every recipe has a twin `<recipe>+weights`
that ranks just after it: the same picks with learned per-example weights
(`learned_weights.py`, fitted to the pool part the recipe picked from), the probe trained
with them. With `labels` (`synthesize.auto.labelled`), a twin `<recipe>+labels` ranks after
that: the same picks with learned soft labels (`learned_labels.py`, solved from the pool part
the recipe picked from), scored by the soft-label probe trained on them.

Recipes, in the order ties are broken (`RECIPES`): `herding`, `kmeans`, `tc_herding`,
`tc_kmeans`, `span_pursuit`, `bilevel`, `tc_bilevel` (`facility_location` and
`tc_facility_location` compete when asked for: not among the default candidates); a `tc_`
recipe runs its selector on a teacher-consistent pool, i.e. without the rows whose label a
linear-probe teacher, fit on that pool (`teacher.C`, `teacher.max_iter`), gives
probability < `tau` (a class left with fewer than `per_class x oversample` rows keeps its
most confident ones up to that). The filter stage's filters are not part of the
cross-validation: contamination reads the evaluation split, which the choice must never see.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from distill_core.config import RunConfig
from distill_core.evaluate.probe_c import stratified_subsample
from distill_core.learners.spec import LearnerSpec
from distill_core.seeds import derive_seed
from distill_core.synthesize.base import select_per_class
from distill_core.synthesize.learned_labels import LabelSettings, label_picks
from distill_core.synthesize.learned_weights import WeightSettings, weigh_picks

# Recipe -> (selector, teacher-consistent pool?), cheapest first: ties go to the earlier.
RECIPES: dict[str, tuple[str, bool]] = {
    "herding": ("herding", False),
    "kmeans": ("kmeans", False),
    "tc_herding": ("herding", True),
    "tc_kmeans": ("kmeans", True),
    "span_pursuit": ("span_pursuit", False),
    "bilevel": ("bilevel", False),
    "tc_bilevel": ("bilevel", True),
    "facility_location": ("facility_location", False),
    "tc_facility_location": ("facility_location", True),
}
AUTO_SEED_TAG = 14  # keeps auto's draws apart from the selections' own seeds
WEIGHTED = "+weights"  # a recipe's twin whose picks get learned weights
LABELLED = "+labels"  # a recipe's twin whose picks get learned soft labels
TWINS = (WEIGHTED, LABELLED)


class RecipeParts(NamedTuple):
    selector: str
    clean: bool  # on a teacher-consistent pool
    weighted: bool  # learned per-example weights
    labelled: bool  # learned soft labels


def recipe_parts(name: str) -> RecipeParts:
    """What a recipe or twin runs: its selector, pool, and what it learns on the picks."""
    twin = next((t for t in TWINS if name.endswith(t)), "")
    selector, clean = RECIPES[name.removesuffix(twin) if twin else name]
    return RecipeParts(selector, clean, twin == WEIGHTED, twin == LABELLED)


# Trains the probe on (x, y), with per-row weights or soft-label targets when given, and
# returns the accuracy on (held_x, held_y).
ScoreFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, np.ndarray | None,
                    np.ndarray | None], float]
# Fits the teacher on (x, y) and returns each row's p(own label).
TeacherFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
# Runs `fold_accuracies` on each fold's arguments, results in the folds' order (in this
# process one after another, or in worker processes: `synthesize/fold_workers.py`).
FoldMap = Callable[[Callable[..., dict[str, float]], Iterable[tuple]], list[dict[str, float]]]


def serial_folds(function: Callable[..., dict[str, float]], jobs: Iterable[tuple]
                 ) -> list[dict[str, float]]:
    return [function(*job) for job in jobs]


@dataclass
class AutoSettings:
    candidates: list[str]
    per_class: int
    oversample: int = 1
    folds: int = 3
    repeats: int = 3
    max_rows: int = 4000
    tau: float = 0.8
    tie_margin: float = 0.0
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # selector -> options
    weights: WeightSettings | None = None  # each recipe also scored with learned weights
    labels: LabelSettings | None = None  # each recipe also scored with learned soft labels
    n_classes: int = 0  # the width of a soft label


@dataclass
class AutoChoice:
    """What `auto` chose and why (the manifest's `auto` block)."""

    chosen: str
    scores: dict[str, dict[str, Any]]  # recipe -> mean, std, accuracies
    protocol: dict[str, Any]
    reason: str

    def manifest(self) -> dict[str, Any]:
        parts = recipe_parts(self.chosen)
        return {"chosen": self.chosen, "selector": parts.selector,
                "teacher_consistent": parts.clean, "learned_weights": parts.weighted,
                "learned_labels": parts.labelled, "reason": self.reason,
                "scores": self.scores, "protocol": self.protocol}


def probe_spec(cfg: RunConfig) -> LearnerSpec:
    """The run's linear probe (its first `linear_probe` learner, else the evaluate C and
    max_iter): the learner the cross-validation trains (on hard labels, or on a labelled
    twin's soft labels, which are solved for its C and temperature). Here, not in
    `methods/auto.py`, because the synthesize stage's fingerprint needs it and a cached rerun
    must not import the learners (torch)."""
    specs = cfg.evaluate.learner_specs(cfg.teacher.temperature)
    return next((s for s in specs if s.kind == "linear_probe"),
                LearnerSpec(kind="linear_probe", C=cfg.evaluate.C,
                            max_iter=cfg.evaluate.max_iter))


def consistent_rows(p_label: np.ndarray, y: np.ndarray, tau: float, keep_at_least: int
                    ) -> np.ndarray:
    """Rows (indices) whose teacher p(label) >= tau; a class left with fewer than
    `keep_at_least` rows keeps its most confident rows up to that many."""
    kept = []
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        good = rows[p_label[rows] >= tau]
        if len(good) < min(keep_at_least, len(rows)):
            order = np.argsort(-p_label[rows], kind="stable")
            good = rows[order[:min(keep_at_least, len(rows))]]
        kept.append(np.sort(good))
    return np.sort(np.concatenate(kept)) if kept else np.zeros(0, np.int64)


def distil(recipe: str, x: np.ndarray, y: np.ndarray, settings: AutoSettings, seed: int,
           p_label: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(indices into (x, y) that `recipe` picks at `settings.per_class` (one seed), the
    rows it picked from)."""
    selector, clean, _, _ = recipe_parts(recipe)
    rows = np.arange(len(y))
    if clean:
        assert p_label is not None
        rows = consistent_rows(p_label, y, settings.tau, settings.per_class * settings.oversample)
    picked = select_per_class(selector, x[rows], y[rows], settings.per_class, seed,
                              settings.params.get(selector, {}))
    return rows[picked.indices], rows


def fold_accuracies(candidates: list[str], settings: AutoSettings, seed: int, x: np.ndarray,
                    labels: np.ndarray, held_x: np.ndarray, held_y: np.ndarray,
                    score: ScoreFn, teacher: TeacherFn) -> dict[str, float]:
    """One fold: each recipe distils (x, labels) and the probe trained on its rows scores
    the held-out part; a weighted (labelled) twin scores the same rows with weights (soft
    labels) learned on the pool the recipe picked from, as the final run learns them."""
    p_label = teacher(x, labels) if any(recipe_parts(r).clean for r in candidates) else None
    accuracies = {}
    for recipe in candidates:
        if recipe.endswith(TWINS):
            continue
        picked, pool = distil(recipe, x, labels, settings, seed, p_label)
        accuracies[recipe] = score(x[picked], labels[picked], held_x, held_y, seed, None, None)
        local = np.searchsorted(pool, picked)  # picks as rows of their pool
        if recipe + WEIGHTED in candidates and settings.weights is not None:
            weights = weigh_picks(x[pool], labels[pool], local, seed, settings.weights)
            accuracies[recipe + WEIGHTED] = score(x[picked], labels[picked], held_x, held_y,
                                                  seed, weights, None)
        if recipe + LABELLED in candidates and settings.labels is not None:
            soft = label_picks(x[pool], labels[pool], local, seed, settings.labels,
                               settings.n_classes)
            accuracies[recipe + LABELLED] = score(x[picked], labels[picked], held_x, held_y,
                                                  seed, None, soft)
    return accuracies


def cross_validate(y: np.ndarray, features: Callable[[np.ndarray], np.ndarray],
                   settings: AutoSettings, seed: int, score: ScoreFn, teacher: TeacherFn,
                   run_folds: FoldMap = serial_folds) -> AutoChoice:
    """Run the protocol above on the pool labelled `y` and choose; deterministic for `seed`.
    `features(rows)` returns the features of pool rows `rows` (called once, with the rows
    the draws sampled: the cross-validation reads nothing else). `run_folds` runs the
    folds, each on its own: the same accuracies wherever it runs them, up to the last bits
    of BLAS reductions split over another number of threads."""
    from sklearn.model_selection import StratifiedKFold

    unknown = [c for c in settings.candidates if c not in RECIPES]
    if unknown:
        raise ValueError(f"unknown auto recipes {unknown}; known: {list(RECIPES)}")
    candidates = []  # cost order; a recipe's twins just after it
    for recipe in RECIPES:
        if recipe in settings.candidates:
            candidates += ([recipe] + ([recipe + WEIGHTED] if settings.weights else [])
                           + ([recipe + LABELLED] if settings.labels else []))
    draws = []
    for repeat in range(settings.repeats):
        seed_r = derive_seed(AUTO_SEED_TAG, seed, repeat)
        rows = stratified_subsample(y, seed_r, settings.max_rows)
        smallest = int(np.unique(y[rows], return_counts=True)[1].min()) if len(rows) else 0
        if min(settings.folds, smallest) < 2:
            break
        draws.append((seed_r, rows, min(settings.folds, smallest)))
    cv_rows = (np.unique(np.concatenate([rows for _, rows, _ in draws])) if draws
               else np.zeros(0, np.int64))
    x_cv = features(cv_rows) if len(cv_rows) else None

    def jobs() -> Iterator[tuple]:
        """Each fold's arguments, built when it is dispatched (its rows are copies)."""
        for seed_r, rows, folds in draws:
            local = np.searchsorted(cv_rows, rows)  # into x_cv
            splitter = StratifiedKFold(n_splits=folds, shuffle=True,
                                       random_state=seed_r % 2**31)
            for pool, held in splitter.split(rows, y[rows]):
                pool, held = local[pool], local[held]
                yield (candidates, settings, seed_r, x_cv[pool], y[cv_rows[pool]],
                       x_cv[held], y[cv_rows[held]], score, teacher)

    accuracies: dict[str, list[float]] = {r: [] for r in candidates}
    for fold in run_folds(fold_accuracies, jobs()) if draws else []:
        for recipe in candidates:
            accuracies[recipe].append(fold[recipe])
    folds_used = draws[0][2] if draws else 0
    used = [rows for _, rows, _ in draws]
    protocol = {"folds": folds_used, "repeats": len(used), "max_rows": settings.max_rows,
                "rows_sampled": int(len(used[0])) if used else 0,
                "pool_rows": int(len(y)), "per_class": settings.per_class,
                "tau": settings.tau, "tie_margin": settings.tie_margin,
                "candidates": candidates, "seed": seed}
    if not used:
        return AutoChoice(candidates[0], {}, protocol, "a class has fewer than 2 training rows: "
                          f"no cross-validation; the cheapest recipe ({candidates[0]})")
    scores = {r: {"mean": float(np.mean(a)), "std": float(np.std(a)),
                  "accuracies": [round(float(v), 6) for v in a]} for r, a in accuracies.items()}
    best = max(s["mean"] for s in scores.values())
    chosen = next(r for r in candidates if scores[r]["mean"] >= best - settings.tie_margin
                  - 1e-12)
    runner_up = [r for r in candidates if r != chosen]
    reason = (f"{chosen}: best mean held-out accuracy {100 * scores[chosen]['mean']:.1f} % over "
              f"{len(used)} x {folds_used} folds of {len(used[0])} training rows")
    if runner_up:
        second = max(runner_up, key=lambda r: scores[r]["mean"])
        reason += (f"; next {second} {100 * scores[second]['mean']:.1f} %"
                   + (" (a tie: the cheaper wins)"
                      if scores[second]["mean"] >= best - settings.tie_margin - 1e-12 else ""))
    return AutoChoice(chosen, scores, protocol, reason)


def report_lines(block: dict[str, Any]) -> list[str]:
    """The run report's account of an `auto` choice (from the manifest's `auto` block)."""
    protocol, digest = block.get("protocol", {}), block.get("cv_ids_sha256", "")[:16]
    lines = ["## The recipe `auto` chose (cross-validation on training rows only)", "",
             f"**auto chose `{block['chosen']}`** ({block['reason']}).", ""]
    if block.get("learned_labels"):
        lines += ["Its set carries learned soft labels: the score table's `auto+soft` row is "
                  "this choice's score (the `auto` row trains the same rows on their own hard "
                  "labels).", ""]
    lines += ["| recipe | CV accuracy % (mean ± std) | folds scored |", "|---|---|---|"]
    for recipe, s in block.get("scores", {}).items():
        mark = "**" if recipe == block["chosen"] else ""
        lines.append(f"| {mark}{recipe}{mark} | {100 * s['mean']:.1f} ± {100 * s['std']:.1f} "
                     f"| {len(s['accuracies'])} |")
    lines += ["", f"Protocol: {protocol.get('repeats')} seeded draws of at most "
              f"{protocol.get('max_rows')} of the {protocol.get('pool_rows')} training-pool rows "
              f"(stratified), {protocol.get('folds')} stratified folds each; every recipe "
              f"distilled the other folds at {protocol.get('per_class')} per class, the linear "
              "probe trained on that and scored the held-out fold (training rows only: "
              f"{block.get('cv_rows')} rows read, ids sha256 `{digest}`"
              f"); ties (within {protocol.get('tie_margin')}) go to the cheaper recipe. "
              f"tc_ recipes drop rows whose teacher p(label) < {protocol.get('tau')}."]
    lines += [f"Note: {n}" for n in block.get("notes", [])]
    if "teacher_inconsistent_rows" in block:
        lines.append(f"The chosen teacher-consistent pool left out "
                     f"{block['teacher_inconsistent_rows']} rows.")
    workers = block.get("cv_workers")
    lines.append(f"Cost: cross-validation {block.get('cv_seconds')} s"
                 + (f" ({workers} worker processes)" if workers and workers > 1 else "")
                 + f", the chosen recipe on the whole pool {block.get('final_seconds')} s.")
    return lines
