"""Inter-annotator agreement: Fleiss' kappa over items rated by the same number of annotators."""

from collections.abc import Sequence


def fleiss_kappa(counts: Sequence[Sequence[int]]) -> float:
    """Fleiss' kappa (Fleiss 1971) of N items, each rated by the same n ≥ 2 annotators.

    κ = (P̄ − P̄e) / (1 − P̄e), where P̄ is the mean over items of
    P_i = (Σ_j n_ij² − n) / (n (n − 1)) (the share of agreeing annotator pairs on item i), and
    P̄e = Σ_j p_j² with p_j = Σ_i n_ij / (N n) (agreement expected by chance).

    Args:
        counts: Shape (N, k): counts[i][j] annotators put item i in category j; every row sums to n.

    Returns:
        κ in [−1, 1]: 1 = complete agreement, 0 = what chance gives. When every rating falls in one
        category P̄e = 1 and κ is undefined; 1.0 is returned (the annotators did all agree).

    Raises:
        ValueError: No items, fewer than 2 ratings per item, rows of unequal sums or lengths, or a
            negative count.
    """
    if not counts:
        raise ValueError("Fleiss' kappa needs at least one item")
    k = len(counts[0])
    n = sum(counts[0])
    for i, row in enumerate(counts):
        if len(row) != k or sum(row) != n or min(row) < 0:
            raise ValueError(
                f"item {i}: {list(row)}; every item needs {k} non-negative counts summing to {n}"
            )
    if n < 2:
        raise ValueError(f"Fleiss' kappa needs at least 2 ratings per item, got {n}")
    num_items = len(counts)
    p_bar = sum((sum(c * c for c in row) - n) / (n * (n - 1)) for row in counts) / num_items
    shares = [sum(row[j] for row in counts) / (num_items * n) for j in range(k)]
    p_chance = sum(p * p for p in shares)
    if p_chance == 1.0:
        return 1.0
    return (p_bar - p_chance) / (1.0 - p_chance)
