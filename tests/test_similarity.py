"""ROUGE-L scores and index answers are exactly rouge-score's, on real data and adversarial cases."""
import gzip
import json
import random
from itertools import islice

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz.distance import Indel
from rouge_score import rouge_scorer

from selfinstruct.data.similarity import RougeIndex, _fast_tokens, fmeasure, rouge_l, tokenize

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
TRICKY = ["", "   ", "İstanbul KELVIN \u212a ß ﬁne naïve café 3.14 x_y a-b", "Ünïcödé only", "中文 text 123",
          "tab\tnew\nline", "UPPER lower MiXeD", "lone\ud800surrogate x\udfff", "'quoted' \"double\" (paren) [b] {c}", "\u0130i"]


def rs_tokens(text):
    return SCORER._tokenizer.tokenize(text)


def rs_score(a_tokens, b_tokens):
    """The Alpaca script's call: new instruction as target, a kept one as prediction."""
    return rouge_scorer._score_lcs(a_tokens, b_tokens).fmeasure


_TOKENS: dict = {}


def cached_tokens(text, mode):
    if (text, mode) not in _TOKENS:
        _TOKENS[text, mode] = tokenize(text, mode)
    return _TOKENS[text, mode]


def perturb(text, rate, rng, vocab):
    """A near-copy: each word deleted, replaced or followed by a random word with prob ``rate``."""
    out = []
    for w in text.split():
        x = rng.random()
        if x < rate / 3:
            continue
        if x < 2 * rate / 3:
            out.append(rng.choice(vocab))
        else:
            out.append(w)
            if x < rate:
                out.append(rng.choice(vocab))
    return " ".join(out)


@pytest.fixture(scope="module")
def t0(shared_data):
    with gzip.open(shared_data / "t0_prompts.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line)["instruction"] for line in islice(f, 12000)]


def near_copy_groups(texts, n, rng, lo=15, hi=60):
    """``n`` real instructions of lo..hi tokens, each with near-copies around ROUGE-L 0.7."""
    pool = [t for t in texts if lo <= len(cached_tokens(t, "rouge")) <= hi]
    base = rng.sample(pool, n)
    vocab = [w for t in base for w in t.split()]
    return [[t] + [perturb(t, rng.choice([0.1, 0.2, 0.25, 0.3, 0.4]), rng, vocab)
                   for _ in range(rng.choice([0, 1, 2, 3]))] for t in base]


def near_copy_set(texts, n, rng, lo=15, hi=60):
    out = [t for g in near_copy_groups(texts, n, rng, lo, hi) for t in g]
    rng.shuffle(out)
    return out


def greedy(texts, threshold, index=None):
    """Alpaca's loop: keep a text iff its max score against the kept ones is <= threshold.
    Returns the kept flags and each text's max score (brute force, rouge-score's LCS)."""
    kept_tokens, flags, maxima = [], [], []
    for t in texts:
        toks = rs_tokens(t)
        scores = [rs_score(toks, k) for k in kept_tokens]
        best = max(scores, default=0.0)
        flags.append(best <= threshold)
        maxima.append(best)
        if best <= threshold:
            kept_tokens.append(toks)
    return flags, maxima


def run_index(texts, threshold, floor=None, fit=False):
    idx = RougeIndex(threshold, floor=floor)
    if fit:
        idx.fit_order(texts)
    flags, maxima = [], []
    for t in texts:
        score, i = idx.nearest(t)
        flags.append(i is None or score <= threshold)
        maxima.append(score if i is not None else None)
        if flags[-1]:
            idx.add(t)
    return flags, maxima, idx


# ----------------------------------------------------------------------------- tokens and scores

def test_tokenizer_is_rouge_scores(t0):
    for text in t0[:3000] + TRICKY:
        want = rs_tokens(text)
        assert tokenize(text) == want
        assert [b.decode() for b in _fast_tokens(text, "rouge")] == want


def test_scores_are_bitwise_rouge_scores(t0):
    rng = random.Random(1)
    groups = [[rs_tokens(t) for t in g] for g in near_copy_groups(t0, 60, rng)]
    toks = [t for g in groups for t in g]
    pairs = [(g[0], c) for g in groups for c in g[1:]] + [(rng.choice(toks), rng.choice(toks)) for _ in range(300)]
    n = 0
    for a, b in pairs:
        want = rs_score(a, b)
        assert rouge_l(a, b) == want == rouge_l(b, a)
        n += 0.6 < want < 0.8
    assert n > 10         # the sample really has pairs around the threshold
    # rapidfuzz's normalized Indel similarity is 2*LCS/(m+n) too, except for two empty inputs
    for a, b in [(toks[0], toks[1]), (toks[2], toks[2]), (["x"], []), (["a", "b"], ["b", "a"])]:
        assert Indel.normalized_similarity(a, b) == pytest.approx(rs_score(a, b), abs=1e-12)
    assert Indel.normalized_similarity([], []) == 1.0 and rouge_l([], []) == 0.0 == rs_score([], [])


def test_exact_ties_at_the_threshold():
    # LCS 7 of 10+10 tokens: F1 is 0.7 on paper; the decision must be rouge-score's float one
    for m, n, lcs in [(10, 10, 7), (13, 7, 7), (7, 13, 7), (20, 20, 14), (100, 100, 70), (30, 40, 24)]:
        a = [f"w{i}" for i in range(m)]
        b = a[:lcs] + [f"v{i}" for i in range(n - lcs)]
        want = rs_score(a, b)
        assert fmeasure(lcs, m, n) == rouge_l(a, b) == want
        idx = RougeIndex(0.7)
        idx.add(" ".join(b))
        assert idx.is_duplicate(" ".join(a)) == (want > 0.7)


# ----------------------------------------------------------------------------- decisions

def test_decisions_equal_rouge_score_on_t0_near_copies(t0):
    texts = near_copy_set(t0, 80, random.Random(2), lo=10, hi=45)
    flags, maxima = greedy(texts, 0.7)
    assert 20 < sum(flags) < len(texts) - 20
    assert sum(0.6 < m < 0.8 for m in maxima) > 10
    for fit in (False, True):
        got, got_max, idx = run_index(texts, 0.7, floor=0.0, fit=fit)
        assert got == flags
        assert got_max == [m if m > 0 else None for m in maxima]      # floor 0: every max exact
        got, got_max, idx = run_index(texts, 0.7, fit=fit)
        assert got == flags
        assert got_max == [m if m > 0.7 else None for m in maxima]
        assert idx.pairs_pruned > idx.pairs_compared


def brute_max(index, text):
    toks = cached_tokens(text, index.tokenizer)
    scores = [rouge_l(toks, cached_tokens(t, index.tokenizer)) for t in index.texts]
    best = max(scores, default=0.0)
    return best, (scores.index(best) if scores else None)


def check_against_brute_force(texts, threshold, floor, fit):
    idx = RougeIndex(threshold, floor=floor)
    if fit:
        idx.fit_order(texts[::2])          # an order from part of the data must stay exact
    for t in texts:
        score, i = idx.nearest(t)
        best, j = brute_max(idx, t)
        if best > idx.floor:
            assert (score, i) == (best, j)
        else:
            assert i is None
        if not idx.is_duplicate(t):
            idx.add(t)
    return idx


@pytest.mark.parametrize("floor", [0.7, 0.4, 0.0])
def test_incremental_index_equals_brute_force_across_rebuilds(t0, floor):
    texts = near_copy_set(t0, 150, random.Random(3), lo=5, hi=40)
    idx = check_against_brute_force(texts, 0.7, floor, fit=False)
    assert len(idx) > 128                  # crossed the rebuilds at 64 and 128 texts
    if floor:
        assert idx.pairs_pruned > 0


def test_fitted_order_equals_brute_force(t0):
    texts = near_copy_set(t0, 150, random.Random(4), lo=5, hi=40)
    check_against_brute_force(texts, 0.5, 0.3, fit=True)


@pytest.mark.parametrize("fit", [False, True])
def test_tightest_prefix_case_is_found(fit):
    """y (6 tokens) is a subsequence of x (10 tokens): overlap 6 is the least that can beat 0.7
    (F1 = 12/16), and x's 4 other tokens are the rarest, so the prefixes meet in one element."""
    x = "q1 q2 q3 q4 c1 c2 c3 c4 c5 c6"
    y = "c1 c2 c3 c4 c5 c6"
    fillers = [f"c{i % 6 + 1} c{(i + 1) % 6 + 1} " + " ".join(f"u{i}x{j}" for j in range(12))
               for i in range(70)]
    idx = RougeIndex(0.7)
    if fit:
        idx.fit_order([x] + fillers + [y])
    for t in fillers + [y]:
        assert not idx.is_duplicate(t)
        idx.add(t)
    assert idx.nearest(x) == (rs_score(tokenize(x), tokenize(y)), 70)
    assert idx.pairs_compared < 70


words = st.lists(st.sampled_from(["a", "b", "c", "d", "e", "f"]), max_size=12).map(" ".join)


@settings(max_examples=60, deadline=None)
@given(st.lists(words, min_size=1, max_size=90), st.sampled_from([0.0, 0.3, 0.5, 0.7, 0.9]),
       st.data())
def test_any_threshold_and_floor_equal_brute_force(texts, threshold, data):
    """Tiny vocabularies make repeated tokens, ties and scores right at the bounds."""
    floor = data.draw(st.sampled_from([f for f in (0.0, 0.2, 0.5, threshold) if f <= threshold]))
    check_against_brute_force(texts, threshold, floor, fit=data.draw(st.booleans()))


def test_counters_and_ids():
    idx = RougeIndex(0.7)
    assert idx.nearest("anything at all") == (0.0, None) and len(idx) == 0
    assert idx.add("the cat sat on the mat") == 0
    assert idx.add("a completely different sentence here") == 1
    assert idx.texts == ["the cat sat on the mat", "a completely different sentence here"]
    score, i = idx.nearest("the cat sat on a mat")
    assert i == 0 and score == rouge_l(tokenize("the cat sat on a mat"), tokenize(idx.texts[0]))
    assert idx.is_duplicate("The Cat sat on the mat!")
    assert not idx.is_duplicate("!!!")            # no tokens: score 0 with everything
    assert idx.pairs_compared + idx.pairs_pruned == 3 * 2     # 3 queries x 2 texts
    with pytest.raises(ValueError):
        RougeIndex(0.5, floor=0.6)
    with pytest.raises(ValueError):
        RougeIndex(tokenizer="bpe")


# ----------------------------------------------------------------------------- unicode

def test_unicode_tokenizer():
    assert tokenize("我喜欢吃苹果。", "unicode") == ["我", "喜", "欢", "吃", "苹", "果"]
    assert tokenize("Привет, Мир! café_au lait 42", "unicode") == ["привет", "мир", "café", "au", "lait", "42"]
    assert tokenize("हिन्दी भाषा", "unicode") == ["हिन्दी", "भाषा"]      # vowel signs stay in the word
    assert tokenize("我喜欢吃苹果。") == [] and tokenize("Привет, Мир!") == []


def test_unicode_mode_catches_chinese_and_russian_near_duplicates():
    zh = ["请把下面的句子翻译成英文。", "请将下面的句子翻译成英文。"]
    ru = ["Переведите следующее предложение на английский язык.",
          "Переведите это предложение на английский язык."]
    for a, b in (zh, ru):
        default, uni = RougeIndex(0.7), RougeIndex(0.7, tokenizer="unicode")
        default.add(a)
        uni.add(a)
        assert not default.is_duplicate(b)          # rouge-score sees no tokens at all
        score, i = uni.nearest(b)
        assert i == 0 and score > 0.7
        ta, tb = tokenize(a, "unicode"), tokenize(b, "unicode")
        assert score == rs_score(ta, tb)            # same formula on unicode tokens


def test_lcs_strings_survive_many_tokens():
    """Token ids become code points; the surrogate range must be skipped."""
    idx = RougeIndex(0.7, floor=0.0)
    for i in range(0, 0xD800 + 50, 64):
        idx.add(" ".join(f"t{j}" for j in range(i, i + 64)))
    last = " ".join(f"t{j}" for j in range(0xD800 - 10, 0xD800 + 40))
    score, i = idx.nearest(last)
    assert (score, i) == brute_max(idx, last) and score > 0.5
