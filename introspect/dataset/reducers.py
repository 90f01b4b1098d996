"""Bounded, mergeable summaries of a stream of batches: what dataset-wide analyzers keep.

A dataset is seen once, batch by batch, and every analyzer keeps one of these reducers. Each
holds a fixed amount of state whatever the dataset's size, and each can be merged with another
of its kind that saw other batches: ``a.merge(b)`` equals one reducer that saw both, so shards
can be reduced on separate workers (processes, Ray actors) and combined on the driver.

Counts and top-k selections merge exactly. Sums merge exactly up to the order of float
additions. Every input is named by its index in the dataset, so ties break the same way however
the data was split.
"""

from __future__ import annotations

import dataclasses

import numpy as np

#: Sentinel index of an empty top-k slot.
EMPTY = -1


def _as_rows(values: np.ndarray) -> np.ndarray:
    """Values as (inputs, units) float64."""
    values = np.asarray(values, dtype=np.float64)
    return values.reshape(len(values), -1)


@dataclasses.dataclass
class UnitMoments:
    """Per-unit count, mean, variance, min, max and how often each unit is active (> ``threshold``).

    The mean and the sum of squared deviations are combined with Chan et al.'s pairwise formula,
    which stays accurate where a running sum of squares would cancel.
    """

    num_units: int
    threshold: float = 0.0
    count: int = 0
    mean: np.ndarray = dataclasses.field(default=None)  # type: ignore[assignment]
    squared_deviations: np.ndarray = dataclasses.field(default=None)  # type: ignore[assignment]
    minimum: np.ndarray = dataclasses.field(default=None)  # type: ignore[assignment]
    maximum: np.ndarray = dataclasses.field(default=None)  # type: ignore[assignment]
    active: np.ndarray = dataclasses.field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.mean is None:
            self.mean = np.zeros(self.num_units)
            self.squared_deviations = np.zeros(self.num_units)
            self.minimum = np.full(self.num_units, np.inf)
            self.maximum = np.full(self.num_units, -np.inf)
            self.active = np.zeros(self.num_units, dtype=np.int64)

    def update(self, values: np.ndarray) -> UnitMoments:
        """Add a batch of ``(inputs, units)`` values (any trailing shape is flattened into units)."""
        rows = _as_rows(values)
        batch = UnitMoments(self.num_units, self.threshold)
        batch.count = len(rows)
        if batch.count:
            batch.mean = rows.mean(axis=0)
            batch.squared_deviations = ((rows - batch.mean) ** 2).sum(axis=0)
            batch.minimum, batch.maximum = rows.min(axis=0), rows.max(axis=0)
            batch.active = (rows > self.threshold).sum(axis=0)
        return self.merge(batch)

    def merge(self, other: UnitMoments) -> UnitMoments:
        """Fold ``other`` (the same units, other inputs) into this one; returns ``self``."""
        total = self.count + other.count
        if other.count:
            delta = other.mean - self.mean
            self.squared_deviations = (
                self.squared_deviations + other.squared_deviations + delta**2 * self.count * other.count / total
            )
            self.mean = self.mean + delta * other.count / total
            self.minimum = np.minimum(self.minimum, other.minimum)
            self.maximum = np.maximum(self.maximum, other.maximum)
            self.active = self.active + other.active
            self.count = total
        return self

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation per unit (zero before any input)."""
        return np.sqrt(self.squared_deviations / max(self.count, 1))

    @property
    def active_fraction(self) -> np.ndarray:
        """Fraction of inputs at which each unit was above the threshold."""
        return self.active / max(self.count, 1)


@dataclasses.dataclass
class TopK:
    """For each unit, the ``k`` inputs with the largest scores, by dataset index.

    Ties go to the lower index, so the selection does not depend on how the data was split.
    Empty slots hold ``-inf`` and index :data:`EMPTY`. Rows of ``scores`` and ``indices`` are
    sorted best first.
    """

    num_units: int
    k: int
    scores: np.ndarray = dataclasses.field(default=None)  # type: ignore[assignment]
    indices: np.ndarray = dataclasses.field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.scores is None:
            self.scores = np.full((self.num_units, self.k), -np.inf)
            self.indices = np.full((self.num_units, self.k), EMPTY, dtype=np.int64)

    def update(self, scores: np.ndarray, indices: np.ndarray) -> TopK:
        """Add a batch: ``scores`` is (inputs, units), ``indices`` the inputs' dataset indices."""
        rows = _as_rows(scores)
        candidates = np.broadcast_to(np.asarray(indices, dtype=np.int64)[:, None], rows.shape)
        return self._keep_best(rows.T, candidates.T)

    def update_assigned(self, units: np.ndarray, scores: np.ndarray, indices: np.ndarray) -> TopK:
        """Add inputs that each count for one unit only (e.g. a mistake counts for its true class)."""
        units = np.asarray(units, dtype=np.int64)
        grid = np.full((self.num_units, len(units)), -np.inf)
        grid[units, np.arange(len(units))] = np.asarray(scores, dtype=np.float64)
        candidates = np.where(np.isfinite(grid), np.asarray(indices, dtype=np.int64)[None, :], EMPTY)
        return self._keep_best(grid, candidates)

    def merge(self, other: TopK) -> TopK:
        """Fold ``other`` (the same units, other inputs) into this one; returns ``self``."""
        return self._keep_best(other.scores, other.indices)

    def _keep_best(self, scores: np.ndarray, indices: np.ndarray) -> TopK:
        all_scores = np.concatenate([self.scores, scores], axis=1)
        all_indices = np.concatenate([self.indices, indices], axis=1)
        order = _best_columns(all_scores, all_indices, self.k)
        self.scores = np.take_along_axis(all_scores, order, axis=1)
        self.indices = np.take_along_axis(all_indices, order, axis=1)
        return self


def _best_columns(scores: np.ndarray, indices: np.ndarray, k: int) -> np.ndarray:
    """Per row, the columns of the ``k`` best entries, best first: the largest score, then the lowest index,
    empty slots last."""
    # Empty slots sort last: their index is pushed past every real one.
    tie_break = np.where(indices == EMPTY, np.iinfo(np.int64).max, indices)
    width = scores.shape[1]
    order = np.empty((len(scores), min(k, width)), dtype=np.int64)
    quick = np.zeros(len(scores), dtype=bool)
    if width > k and not np.isnan(scores).any():
        # Where no other entry ties the k-th largest score, the k best are those at or above it: a linear-time
        # partition finds them, and only they are sorted. Rows with such a tie (or NaN) take the full sort.
        kth = np.partition(scores, width - k, axis=1)[:, width - k]
        above = scores >= kth[:, None]
        quick = above.sum(axis=1) == k
        columns = np.nonzero(above[quick])[1].reshape(-1, k)
        chosen_scores = np.take_along_axis(scores[quick], columns, axis=1)
        chosen_ties = np.take_along_axis(tie_break[quick], columns, axis=1)
        best_first = np.lexsort((chosen_ties, -chosen_scores), axis=1)
        order[quick] = np.take_along_axis(columns, best_first, axis=1)
    slow = ~quick
    order[slow] = np.lexsort((tie_break[slow], -scores[slow]), axis=1)[:, :k]
    return order


@dataclasses.dataclass
class ConfusionCounts:
    """Counts of (true class, predicted class) pairs."""

    num_classes: int
    counts: np.ndarray = dataclasses.field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.counts is None:
            self.counts = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def update(self, labels: np.ndarray, predictions: np.ndarray) -> ConfusionCounts:
        """Add a batch of true labels and predicted classes."""
        np.add.at(self.counts, (np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64)), 1)
        return self

    def merge(self, other: ConfusionCounts) -> ConfusionCounts:
        """Fold ``other`` into this one; returns ``self``."""
        self.counts = self.counts + other.counts
        return self


@dataclasses.dataclass
class ClassMeans:
    """Per class: the count, the mean map and its spread (sum and sum of squares per element)."""

    num_classes: int
    shape: tuple[int, ...]
    counts: np.ndarray = dataclasses.field(default=None)  # type: ignore[assignment]
    sums: np.ndarray = dataclasses.field(default=None)  # type: ignore[assignment]
    squares: np.ndarray = dataclasses.field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.counts is None:
            self.counts = np.zeros(self.num_classes, dtype=np.int64)
            self.sums = np.zeros((self.num_classes, *self.shape))
            self.squares = np.zeros((self.num_classes, *self.shape))

    def update(self, labels: np.ndarray, maps: np.ndarray) -> ClassMeans:
        """Add a batch of maps (inputs, *shape) with their classes."""
        labels = np.asarray(labels, dtype=np.int64)
        maps = np.asarray(maps, dtype=np.float64).reshape(len(labels), *self.shape)
        np.add.at(self.counts, labels, 1)
        np.add.at(self.sums, labels, maps)
        np.add.at(self.squares, labels, maps**2)
        return self

    def merge(self, other: ClassMeans) -> ClassMeans:
        """Fold ``other`` into this one; returns ``self``."""
        self.counts = self.counts + other.counts
        self.sums = self.sums + other.sums
        self.squares = self.squares + other.squares
        return self

    def means(self) -> np.ndarray:
        """(classes, *shape) mean maps; NaN for a class never seen."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sums / self.counts.reshape(-1, *([1] * len(self.shape)))

    def stds(self) -> np.ndarray:
        """(classes, *shape) population standard deviations; NaN for a class never seen."""
        means = self.means()
        with np.errstate(invalid="ignore", divide="ignore"):
            second = self.squares / self.counts.reshape(-1, *([1] * len(self.shape)))
        return np.sqrt(np.maximum(second - means**2, 0.0))


def sample_keys(indices: np.ndarray, seed: int) -> np.ndarray:
    """A pseudo-random uint64 key per dataset index (splitmix64 of index and seed).

    The key depends only on the index and the seed, never on which batch or worker saw the
    input: that is what makes a bottom-k sample exactly mergeable.
    """
    with np.errstate(over="ignore"):
        state = np.asarray(indices, dtype=np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        state = (state ^ (state >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        state = (state ^ (state >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return state ^ (state >> np.uint64(31))


@dataclasses.dataclass
class Reservoir:
    """A uniform sample of at most ``size`` rows (with their labels), the same for any split.

    Bottom-k sampling: each input gets a key from its dataset index and the seed, and the rows
    with the smallest keys are kept. Every input is equally likely to be kept, and the kept set
    depends only on which inputs were seen.
    """

    size: int
    seed: int = 0
    keys: np.ndarray = dataclasses.field(default=None)  # type: ignore[assignment]
    indices: np.ndarray = dataclasses.field(default=None)  # type: ignore[assignment]
    rows: np.ndarray | None = None
    labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.keys is None:
            self.keys = np.zeros(0, dtype=np.uint64)
            self.indices = np.zeros(0, dtype=np.int64)

    def candidates(self, indices: np.ndarray) -> np.ndarray:
        """Which of the offered dataset ``indices`` could enter the sample (a boolean mask).

        Once the sample is full, an input enters only if its (key, index) sorts before the largest
        kept one; a caller can select those rows before computing them, and the others never count.
        """
        indices = np.asarray(indices, dtype=np.int64)
        if len(self.keys) < self.size:
            return np.ones(len(indices), dtype=bool)
        keys, largest = sample_keys(indices, self.seed), self.keys.max()
        # Ties of keys are broken by index, as in merge's sort.
        return (keys < largest) | ((keys == largest) & (indices < self.indices[self.keys == largest].max()))

    def update(self, rows: np.ndarray, indices: np.ndarray, labels: np.ndarray | None = None) -> Reservoir:
        """Offer a batch of rows (inputs, features) with their dataset indices (and labels)."""
        indices = np.asarray(indices, dtype=np.int64)
        chosen = self.candidates(indices)
        if not chosen.any():
            return self
        rows = _as_rows(rows)
        labels = np.full(len(rows), -1, dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
        if not chosen.all():  # a boolean index copies even when it keeps every row
            rows, indices, labels = rows[chosen], indices[chosen], labels[chosen]
        offered = Reservoir(self.size, self.seed, sample_keys(indices, self.seed), indices, rows, labels)
        return self.merge(offered)

    def merge(self, other: Reservoir) -> Reservoir:
        """Fold ``other`` (the same seed, other inputs) into this one; returns ``self``."""
        if other.rows is None:
            return self
        if self.rows is None:
            self.rows = np.zeros((0, other.rows.shape[1]))
            self.labels = np.zeros(0, dtype=np.int64)
        keys = np.concatenate([self.keys, other.keys])
        indices = np.concatenate([self.indices, other.indices])
        order = np.lexsort((indices, keys))[: self.size]
        order = order[np.argsort(indices[order], kind="stable")]  # kept in dataset order
        self.keys, self.indices = keys[order], indices[order]
        self.rows = _gathered(self.rows, other.rows, order)
        self.labels = _gathered(self.labels, other.labels, order)
        return self


def _gathered(first: np.ndarray, second: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``np.concatenate([first, second])[order]``, with as few copies of the (possibly large) sample as it takes."""
    from_first = order < len(first)
    kept_first, kept_second = order[from_first], order[~from_first] - len(first)
    if from_first[: len(kept_first)].all():
        # The kept rows of ``first`` all come before those of ``second`` (a pass in dataset order): two
        # slices joined, not a gather of every row.
        return np.concatenate([_taken(first, kept_first), _taken(second, kept_second)])
    gathered = np.empty((len(order), *first.shape[1:]), dtype=np.result_type(first, second))
    gathered[np.flatnonzero(from_first)] = first[kept_first]
    gathered[np.flatnonzero(~from_first)] = second[kept_second]
    return gathered


def _taken(rows: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """``rows[positions]``, or ``rows`` itself when ``positions`` are all of them in order."""
    return rows if len(positions) == len(rows) and (positions == np.arange(len(rows))).all() else rows[positions]
