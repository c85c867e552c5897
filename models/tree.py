"""Trail-safety decision tree: the builder (scikit-learn). The BMKG rows, their validation and both label
definitions live in ``edge.weather`` (no scikit-learn), so ``edge eval`` can read another station's file."""

from __future__ import annotations

from sklearn.tree import DecisionTreeClassifier


def trail_tree(max_depth: int = 6, min_samples_leaf: int = 5, seed: int = 0) -> DecisionTreeClassifier:
    """The tree's builder: small enough for an ESP32, deterministic."""
    return DecisionTreeClassifier(max_depth=max_depth, min_samples_leaf=min_samples_leaf, random_state=seed)

