"""Forget sets: which training samples an unlearning task removes.

Kinds (``dememo.planning.suite.ForgetSpec``):

- ``random``: ``round(fraction·n)`` samples, the first positions of a permutation seeded by the spec and
  the seed (SalUn's 10 % random forgetting).
- ``class``: every training sample of the listed classes (class-level forgetting).
- ``memorization``: N = ``round(fraction·n)`` samples chosen by a per-sample memorization score (higher =
  more memorized; a scorer inverts a proxy that correlates negatively, REFERENCES.md), as in Zhao et al.,
  "What makes unlearning hard and what to do about it" (NeurIPS 2024, the RUM paper), following the
  authors' ``main_forget.py`` (kairanzhao/RUM; the ``mem_fs_split`` branch for Feldman–Zhang scores and
  ``select_fs`` / the proxy branch for proxies). With ``selection = "rum"`` (the default), over the
  training split ranked by score:

  - ``high``: the N highest-scored samples; ``low``: the N lowest;
  - ``mid``: the N samples whose score is nearest the scorer's *middle* (``Scorer.middle``): 0.5 for exact
    Feldman–Zhang scores, as the released code uses for them, and the median of the scores for every
    proxy (``middle = None``), as it uses for proxies;
  - ``mix``: the top ⌊N/3⌋, the ⌊N/3⌋ nearest the middle and the bottom ⌈N/3⌉ — what the released code
    evaluates RUM on (N = 3000: 1000 of each, the very strata its sequential steps forget).

  Deviations from the released code, each where it would not give N distinct samples or is not
  reproducible: (1) part sizes when 3 does not divide N: its ``[-N // 3:]`` gives ⌈N/3⌉ to the end of
  its descending list and ⌊N/3⌋ to the other two parts, so with N ≡ 2 (mod 3) the mix has N − 1
  samples; dememo gives ⌈N/3⌉ to the low part and, when N ≡ 2, one more to the mid part, so the mix
  always has N (for the confidence proxies, which the released code ranks un-inverted, its ⌈N/3⌉ part is
  the most memorized one instead); (2) it concatenates the three parts, so a sample both among the top
  ⌊N/3⌋ and nearest the middle would appear twice; dememo takes the mid part from the samples not already
  in the high or low part; (3) it breaks score ties by dataset position (a stable sort of the split's
  order); dememo by a permutation seeded by the cell's seed, so a discrete proxy (``correctness``) does
  not pick by position in the split. Its proxy branch for the confidence proxies sorts the distance to
  the median after a sort by the distance to the mid-range, which matters only for two scores at exactly
  the same distance on either side of the median; dememo breaks that tie by rank (higher first), as its
  ``select_fs`` does.

  ``selection = "tertile"`` keeps dememo's first rule (an explicit option, not the paper's; the rule is
  the same, but its random draws are seeded by the spec, which now names the selection, so they are not
  the version-1 sets): rank, cut the
  split into three equal thirds, and draw N samples at random from the bottom, middle or top third (the
  mix a third from each); the strata then hold typical rather than extreme samples. Measured on digits
  (10 % by the confidence proxy, mean exact Feldman–Zhang score; population 0.04): tertile draws high
  0.10–0.15 and mix 0.03–0.04 (a random set), the published high 0.38–0.40 and mix 0.20–0.23
  (tests/plugins/unlearners/test_rum.py).

``strata`` splits any forget set into its bottom, middle and top parts by the same ranking and with the mix's
part sizes, so a RUM-selected mix splits back into exactly the three parts it was drawn from (RUM's
sequential steps).
"""

from __future__ import annotations

import torch

from dememo.data import Data, Task
from dememo.errors import UserError
from dememo.hashing import digest, generator_for

STRATA = ("low", "mid", "high", "mix")
SELECTIONS = ("rum", "tertile")


def first_of_permutation(n: int, count: int, *parts: object) -> torch.Tensor:
    """A boolean mask of the first ``count`` positions of a permutation of ``range(n)`` seeded by ``parts``
    (nested in ``count``: a larger count keeps the smaller one's samples)."""
    order = torch.randperm(n, generator=generator_for(*parts))
    mask = torch.zeros(n, dtype=torch.bool)
    mask[order[:count]] = True
    return mask


def random_mask(n: int, fraction: float, seed: int, spec: dict) -> torch.Tensor:
    return first_of_permutation(n, max(1, round(fraction * n)), "forget", spec, seed)


def class_mask(labels: torch.Tensor, classes: tuple[int, ...], num_classes: int, dataset: str) -> torch.Tensor:
    bad = [c for c in classes if not 0 <= c < num_classes]
    if bad:
        raise UserError(f"forget class {bad[0]} does not exist in {dataset!r} ({num_classes} classes)")
    return torch.isin(labels.cpu(), torch.tensor(classes))


def ranking(scores: torch.Tensor, seed: int) -> torch.Tensor:
    """Positions of ``scores`` from the highest to the lowest (ties in an order seeded by ``seed``)."""
    scores = scores.detach().to("cpu", torch.float64)
    shuffle = torch.randperm(len(scores), generator=generator_for("memorization-ties", seed))
    return shuffle[torch.sort(scores[shuffle], descending=True, stable=True).indices]


def median(scores: torch.Tensor) -> float:
    """The median as numpy takes it (the mean of the two middle values for an even count)."""
    values = torch.sort(scores.detach().to("cpu", torch.float64)).values
    n = len(values)
    return float((values[(n - 1) // 2] + values[n // 2]) / 2)


def mix_sizes(count: int) -> tuple[int, int, int]:
    """Sizes of the low, mid and high parts of a mix of ``count`` samples (see the module docstring)."""
    third, spare = divmod(count, 3)
    return third + (spare >= 1), third + (spare == 2), third


def nearest_middle(scores: torch.Tensor, order: torch.Tensor, count: int, middle: float | None) -> torch.Tensor:
    """The ``count`` positions of ``order`` (a ranking, or part of one) whose scores are nearest ``middle``
    (``None``: the median of all ``scores``); equal distances keep their order in ``order``."""
    scores = scores.detach().to("cpu", torch.float64)
    centre = median(scores) if middle is None else float(middle)
    distance = (scores[order] - centre).abs()
    return order[torch.sort(distance, stable=True).indices[:count]]


def rum_selection(scores: torch.Tensor, stratum: str, count: int, seed: int, middle: float | None) -> torch.Tensor:
    """Positions of the published memorization forget set (see the module docstring)."""
    order = ranking(scores, seed)
    n = len(order)
    if stratum == "high":
        return order[:count]
    if stratum == "low":
        return order[n - count:]
    if stratum == "mid":
        return nearest_middle(scores, order, count, middle)
    low, mid, high = mix_sizes(count)
    rest = order[high:n - low]  # the mid part comes from samples not already in the high or low part
    return torch.cat([order[:high], nearest_middle(scores, rest, mid, middle), order[n - low:]])


def tertiles(scores: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Positions of the low, mid and high thirds of ``scores`` (ascending; ties in a seeded order)."""
    scores = scores.detach().to("cpu", torch.float64)
    shuffle = torch.randperm(len(scores), generator=generator_for("tertiles", seed))
    order = shuffle[torch.sort(scores[shuffle], stable=True).indices]
    n = len(scores)
    cuts = [0, n // 3, (2 * n) // 3, n]
    return order[cuts[0]:cuts[1]], order[cuts[1]:cuts[2]], order[cuts[2]:cuts[3]]


def tertile_selection(scores: torch.Tensor, stratum: str, count: int, seed: int, spec: dict) -> torch.Tensor:
    """Positions of a random draw of ``count`` samples from a third of the ranking (``selection = "tertile"``)."""
    thirds = tertiles(scores, seed)
    if stratum == "mix":
        counts = list(mix_sizes(count))
    else:
        counts = [count if s == stratum else 0 for s in ("low", "mid", "high")]
    picked = []
    for i, (third, size) in enumerate(zip(thirds, counts, strict=True)):
        if size > len(third):
            raise UserError(f"a {stratum} tertile memorization forget set of {count} samples needs fraction ≤ 1/3 "
                            f"(each stratum is a third of the {len(scores)} training samples); lower the fraction")
        picked.append(third[torch.randperm(len(third), generator=generator_for("stratum", spec, seed, i))[:size]])
    return torch.cat(picked)


def memorization_mask(scores: torch.Tensor, stratum: str, fraction: float, seed: int, spec: dict,
                      selection: str = "rum", middle: float | None = None) -> torch.Tensor:
    """The forget mask of a memorization forget set (see the module docstring); ``middle`` is the score
    the ``mid`` stratum is centred on (the scorer's ``middle``; ``None``: the median)."""
    n = len(scores)
    if stratum not in STRATA:
        raise UserError(f"memorization stratum must be one of {', '.join(STRATA)}, got {stratum!r}")
    if selection not in SELECTIONS:
        raise UserError(f"memorization selection must be one of {', '.join(SELECTIONS)}, got {selection!r}")
    if not torch.isfinite(scores).all():
        raise ValueError("memorization scores must be finite")
    count = max(1, round(fraction * n))
    if count > n:
        raise UserError(f"a memorization forget set of {count} samples needs more than the {n} training samples; lower the fraction")
    if selection == "rum":
        chosen = rum_selection(scores, stratum, count, seed, middle)
    else:
        chosen = tertile_selection(scores, stratum, count, seed, spec)
    mask = torch.zeros(n, dtype=torch.bool)
    mask[chosen] = True
    return mask


def strata(scores: torch.Tensor, members: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split the samples ``members`` (positions in the scored split, e.g. ``task.forget.index``) into their
    low, mid and high parts: ranked as ``ranking`` ranks the split, cut with the mix's sizes (``mix_sizes``).
    Returns positions in ``members``. A RUM-selected mix splits back into exactly its three parts."""
    rank = torch.empty(len(scores), dtype=torch.int64)
    rank[ranking(scores, seed)] = torch.arange(len(scores))
    by_rank = torch.argsort(rank[members.cpu()])  # most memorized first
    low, mid, high = mix_sizes(len(members))
    return by_rank[high + mid:], by_rank[high:high + mid], by_rank[:high]


def split(train: Data, mask: torch.Tensor, spec: dict, seed: int, val: Data) -> Task:
    """The task for a forget ``mask`` over ``train``, with fingerprints derived from the spec and seed."""
    tag = digest(spec)
    mask = mask.to("cpu")
    return Task(
        retain=train.subset((~mask).nonzero().flatten(), f"retain:{tag}:{seed}"),
        forget=train.subset(mask.nonzero().flatten(), f"forget:{tag}:{seed}"),
        val=val,
    )
