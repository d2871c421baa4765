"""Server weights that give a canary its share of an app's requests, whatever the replica counts.

HAProxy's `roundrobin` sends each server requests in proportion to its weight (an integer from 1 to 256),
smoothly and deterministically. With `old` replicas of the app's release and `new` of the canary, the
canary's share is p / 100 when each old server weighs (100 - p) * new and each canary server p * old:
new * p * old / (new * p * old + old * (100 - p) * new) = p / 100.
"""

from fractions import Fraction
from functools import lru_cache

# HAProxy's largest server weight.
MAX_WEIGHT = 256


@lru_cache(maxsize=1024)
def split_weights(percent: int, old: int, new: int) -> tuple[int, int]:
    """(weight of each server of the app's release, weight of each canary server) for the canary to get
    `percent` % of the requests, reduced to the smallest integers. When those exceed HAProxy's 256 (many
    replicas and an odd percentage), the pair within 1..256 whose share comes closest is used instead."""
    if old <= 0 or new <= 0:
        return 1, 1  # one side has no server: the other takes everything, weights do not matter
    ratio = Fraction((100 - percent) * new, percent * old)  # old weight / canary weight, reduced
    if ratio.numerator <= MAX_WEIGHT and ratio.denominator <= MAX_WEIGHT:
        return ratio.numerator, ratio.denominator
    wanted, exact = percent / 100, float(ratio)
    best, best_error = (MAX_WEIGHT, MAX_WEIGHT), 1.0
    for canary in range(1, MAX_WEIGHT + 1):
        mine = min(MAX_WEIGHT, max(1, round(exact * canary)))
        error = abs(new * canary / (new * canary + old * mine) - wanted)
        if error < best_error:
            best, best_error = (mine, canary), error
    return best


def share(old_weight: int, canary_weight: int, old: int, new: int) -> Fraction:
    """The canary's share of the requests with these weights and replica counts."""
    return Fraction(new * canary_weight, new * canary_weight + old * old_weight)
