"""selfinstruct.evaluation.stats: bootstrap intervals with known answers, paired comparisons, the collapse rule."""
import math
import random
import statistics

import pytest

from selfinstruct.evaluation.stats import (answer_diversity, bootstrap_ci, headline, is_collapse, paired_comparison,
                                verdict)


def reference_bootstrap(values, resamples, seed, level=0.95):
    """The textbook percentile bootstrap, one resample at a time, in plain Python."""
    rnd = random.Random(seed)
    n = len(values)
    means = sorted(sum(values[rnd.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    q = statistics.quantiles(means, n=1000, method="inclusive")  # q[k-1] is the k/1000 quantile
    return q[round(1000 * (1 - level) / 2) - 1], q[round(1000 * (1 + level) / 2) - 1]


def test_bootstrap_known_answers():
    assert bootstrap_ci([0.25] * 7) == (0.25, 0.25)       # every resample has the same mean
    assert bootstrap_ci([0.4]) == (0.4, 0.4)
    # two values: resample means are 0, 0.5, 1 with probability 1/4, 1/2, 1/4 -> 2.5% is 0, 97.5% is 1
    assert bootstrap_ci([0.0, 1.0]) == (0.0, 1.0)
    assert bootstrap_ci([0.0, 1.0], level=0.4) == (0.5, 0.5)  # 30% and 70% quantiles fall in the middle half


def test_bootstrap_matches_a_plain_reference_and_the_normal_approximation():
    rnd = random.Random(7)
    values = [rnd.gauss(0.1, 0.3) for _ in range(200)]
    lo, hi = bootstrap_ci(values, resamples=10_000, seed=3)
    ref_lo, ref_hi = reference_bootstrap(values, 10_000, seed=11)
    assert lo == pytest.approx(ref_lo, abs=0.006) and hi == pytest.approx(ref_hi, abs=0.006)
    half = 1.959964 * statistics.stdev(values) / math.sqrt(len(values))   # about 0.041 here
    mean = statistics.fmean(values)
    assert lo == pytest.approx(mean - half, abs=0.006) and hi == pytest.approx(mean + half, abs=0.006)
    assert lo < mean < hi


def test_bootstrap_is_seeded_and_checks_its_input():
    values = [0.1, 0.7, 0.3, 0.0, 0.9, 0.2]
    assert bootstrap_ci(values, seed=5) == bootstrap_ci(values, seed=5)
    assert bootstrap_ci(values, seed=5) != bootstrap_ci(values, seed=6)
    with pytest.raises(ValueError):
        bootstrap_ci([])
    with pytest.raises(ValueError):
        bootstrap_ci([1.0], resamples=0)


def test_paired_comparison_counts_and_means():
    a = [0.1, 0.5, 0.5, 0.2, 0.0]
    b = [0.3, 0.5, 0.1, 0.2, 0.4]
    c = paired_comparison(a, b, resamples=2_000, seed=1)
    assert (c["wins"], c["ties"], c["losses"], c["rows"]) == (2, 2, 1, 5)
    assert c["mean_a"] == pytest.approx(0.26) and c["mean_b"] == pytest.approx(0.3)
    assert c["diff"] == pytest.approx(0.04)
    assert c["ci_low"] < c["diff"] < c["ci_high"]
    assert (c["ci_low"], c["ci_high"]) == bootstrap_ci([y - x for x, y in zip(a, b)], resamples=2_000, seed=1)
    with pytest.raises(ValueError):
        paired_comparison([0.1], [0.1, 0.2])
    with pytest.raises(ValueError):
        paired_comparison([], [])


def test_a_clear_gain_has_an_interval_above_zero():
    rnd = random.Random(0)
    a = [rnd.random() * 0.3 for _ in range(60)]
    b = [x + 0.1 + rnd.gauss(0, 0.05) for x in a]
    c = paired_comparison(a, b)
    assert c["ci_low"] > 0.07 and c["ci_high"] < 0.13 and verdict(c) == "beats"
    assert verdict(paired_comparison(b, a)) == "trails"
    assert verdict(paired_comparison(a, a)) == "is not clearly different from"


def test_headline_text():
    c = {"mean_a": 0.133, "mean_b": 0.2104, "diff": 0.0774, "ci_low": 0.0411, "ci_high": 0.1119,
         "level": 0.95, "wins": 31, "ties": 12, "losses": 7}
    assert headline("embedded", "tuned", c) == ("tuned beats embedded: ROUGE-L 0.210 vs 0.133, +0.077 "
                                                "[95% CI +0.041, +0.112], 31 wins / 12 ties / 7 losses")
    c2 = {**c, "mean_b": 0.1, "diff": -0.033, "ci_low": -0.07, "ci_high": 0.004}
    assert headline("base", "tuned", c2).startswith(
        "tuned is not clearly different from base: ROUGE-L 0.100 vs 0.133, -0.033 [95% CI -0.070, +0.004]")


def test_answer_diversity_and_the_collapse_rule():
    thanks = ["Thank you"] * 9 + [" Hi "]
    d = answer_diversity(thanks)
    assert d == {"rows": 10, "top_answer": "Thank you", "top_count": 9, "top_share": 0.9, "distinct": 2,
                 "distinct_per_100": 20.0}
    assert is_collapse(d)
    varied = [f"answer {i}" for i in range(10)]
    assert not is_collapse(answer_diversity(varied))
    # just over / at the 30% line
    assert is_collapse(answer_diversity(["same"] * 4 + [f"a{i}" for i in range(9)]))       # 4/13 = 31%
    assert not is_collapse(answer_diversity(["same"] * 3 + [f"a{i}" for i in range(7)]))   # 3/10 = 30%
    # few distinct answers, none above 30%: 5 distinct in 30 rows = 16.7 per 100
    assert is_collapse(answer_diversity([f"a{i % 5}" for i in range(30)]))
    # too few rows to tell
    assert is_collapse(answer_diversity(["same"] * 9)) is None
    assert answer_diversity([])["top_share"] is None
    # first seen wins a tie
    assert answer_diversity(["b", "a", "a", "b"])["top_answer"] == "b"


def test_collapse_rule_follows_repetitive_references():
    refs = ["positive", "negative"] * 10          # a classification-only set: top share 50%, 10 per 100
    ref = answer_diversity(refs)
    assert not is_collapse(answer_diversity(refs), ref)          # a model that matches its references
    assert is_collapse(answer_diversity(refs))                    # the same answers without that context
    assert is_collapse(answer_diversity(["positive"] * 20), ref)  # one label for every row
    key = answer_diversity(["Thank you.", "thank you", "THANK YOU!"] * 4, key=lambda s: s.lower().strip(".! "))
    assert key["top_share"] == 1.0
