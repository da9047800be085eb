"""ROUGE-L similarity, exactly as rouge-score computes it, with an index that skips most pairs.

Scores are bit-for-bit those of ``rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)``:
the same tokens (lowercase, runs of ``[a-z0-9]``, no stemming) and the same float formula
(``p = lcs/n``, ``r = lcs/m``, ``f = 2*p*r/(p+r)``, 0 when a side is empty). The LCS length
comes from rapidfuzz (C, bit-parallel) on strings with one character per token.

:class:`RougeIndex` finds every indexed text scoring above a ``floor`` against a query
without comparing most pairs. ROUGE-L F1 is ``2*LCS/(m+n)`` and LCS is at most the
multiset overlap ``o`` of the two token lists, so ``F1 > floor`` needs ``2*o >= floor*(m+n)``.
A text is the set of its elements ``(token, k-th occurrence)``, sorted by one fixed total
order (rarest token first). That needs ``o >= a(m) = ceil(floor*m/(2-floor))``, and by the
prefix-filter lemma of set-similarity joins two such texts share an element among their
first ``len - a + 1`` (the prefix). Only texts sharing a prefix element are candidates;
a candidate ``y`` with ``c`` prefix elements in common with ``x`` has
``o <= c + (elements after the prefix that ends first)`` and ``o <= min(m, n)``, and is
compared (LCS) only when that bound reaches the floor. Every skipped pair provably scores
<= floor, so answers equal brute force. Bounds keep a 1e-9 margin against float rounding.

The order must be the same for every indexed text. It is frozen either from a first pass
over a corpus known in advance (:meth:`RougeIndex.fit_order`, the batch path) or, when
texts arrive one at a time, from the indexed texts' token frequencies, and re-frozen (every
prefix rebuilt) each time the index doubles. Tokens first seen after a freeze rank as the
rarest, in arrival order: the order stays total and fixed until the next rebuild.
"""
from __future__ import annotations

import array
import math
import re
from itertools import chain

import numpy as np
import regex
from rapidfuzz import process
from rapidfuzz.distance import LCSseq

TOKENIZERS = ("rouge", "unicode")
_ROUGE_TOKEN = re.compile(r"[a-z0-9]+")
_ASCII_WORD = bytes(c if 48 <= c <= 57 or 97 <= c <= 122 else 32 for c in range(256))
_CJK = r"\p{Han}\p{Hiragana}\p{Katakana}"
_UNICODE_TOKEN = regex.compile(rf"[{_CJK}]|(?:(?![{_CJK}])[\p{{L}}\p{{N}}\p{{M}}])+")
_EPS = 1e-9
_K_BITS = 24                 # element key = rank << 24 | occurrence
_FROZEN = 1 << 38            # ranks given at a freeze; tokens seen later rank below
_FIRST_FREEZE = 64
_FEW = 24                    # up to this many candidates: LCS in a Python loop
_MAX_ID = 0x10FFFF          # token ids are code points (surrogates skipped)


def tokenize(text: str, mode: str = "rouge") -> list[str]:
    """Words of ``text``. ``rouge``: rouge-score's default tokenizer (lowercase, runs of
    ``[a-z0-9]``). ``unicode``: lowercase runs of letters/digits/marks in any script, and
    each Chinese/Japanese character as its own token (those scripts have no spaces)."""
    if mode == "rouge":
        return _ROUGE_TOKEN.findall(text.lower())
    if mode == "unicode":
        return _UNICODE_TOKEN.findall(text.lower())
    raise ValueError(f"unknown tokenizer {mode!r} (choose from {', '.join(TOKENIZERS)})")


def _fast_tokens(text: str, mode: str) -> list:
    """Same tokens as :func:`tokenize` (as bytes in rouge mode: 3x faster)."""
    if mode == "rouge":
        return text.lower().encode("utf-8", "surrogatepass").translate(_ASCII_WORD).split()
    return tokenize(text, mode)


def fmeasure(lcs: int, m: int, n: int) -> float:
    """rouge-score's F-measure, with its exact float operations."""
    if not m or not n:
        return 0.0
    p, r = lcs / n, lcs / m
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def rouge_l(a_tokens, b_tokens) -> float:
    """ROUGE-L F-measure of two token lists (equal to rouge-score's ``_score_lcs``)."""
    if not a_tokens or not b_tokens:
        return 0.0
    return fmeasure(LCSseq.similarity(a_tokens, b_tokens), len(a_tokens), len(b_tokens))


def min_overlap(m: int, floor: float) -> int:
    """Least overlap a text of ``m`` tokens needs with another to score >= floor."""
    f = floor - _EPS
    return max(0, math.ceil(m * f / (2 - f) - 1e-7)) if f > 0 else 0


class RougeIndex:
    """Texts to compare new texts against; exact ROUGE-L maxima above ``floor``.

    ``nearest(text)`` returns ``(max score, id)`` exactly whenever the max over the indexed
    texts is > ``floor`` (default: the threshold; ties go to the earliest id); otherwise
    ``(0.0, None)``, meaning "nothing scores above the floor". ``floor=0`` makes every
    answer exact, at the cost of comparing every pair that shares a word.
    Counters: ``pairs_compared`` (LCS computed) and ``pairs_pruned`` (skipped by the
    bounds); their sum is the number of pairs brute force would score.
    """

    def __init__(self, threshold: float = 0.7, tokenizer: str = "rouge", floor: float | None = None):
        if not 0 <= threshold <= 1:
            raise ValueError("threshold must be between 0 and 1")
        floor = threshold if floor is None else floor
        if not 0 <= floor <= threshold:
            raise ValueError("floor must be between 0 and the threshold")
        tokenize("", tokenizer)
        self.threshold, self.floor, self.tokenizer = threshold, floor, tokenizer
        self.texts: list[str] = []
        self.pairs_compared = self.pairs_pruned = 0
        self._tok: dict = {}                         # token -> id (a code point of the LCS strings)
        self._next_id = 0
        self._rank = np.zeros(1024, np.int64)        # token id -> rank (smaller = rarer)
        self._new = 0                                # next rank for a token unseen at the freeze
        self._seq: list[str] = []                    # per text: one character per token
        self._tids: list[np.ndarray] = []            # per text: token ids (for rebuilds)
        self._len = np.zeros(1024, np.int64)         # per text: token count
        self._last = np.zeros(1024, np.int64)        # per text: key of its last prefix element
        self._rest = np.zeros(1024, np.int64)        # per text: elements after its prefix
        self._post: dict[int, array.array] = {}      # element key -> texts with it in their prefix
        self._fixed = False
        self._next_freeze = _FIRST_FREEZE
        self._pre: dict[str, np.ndarray] = {}        # tokenisations cached by fit_order
        self._last_enc: tuple = (None, None)

    def __len__(self) -> int:
        return len(self.texts)

    # ------------------------------------------------------------------ encoding

    def _token_ids(self, text: str) -> np.ndarray:
        tids = self._pre.get(text)
        if tids is not None:
            return tids
        toks = _fast_tokens(text, self.tokenizer)
        d = self._tok
        for t in dict.fromkeys(toks):
            if t not in d:
                self._new_token(t)
        return np.array(list(map(d.__getitem__, toks)), np.int32)

    def _new_token(self, t) -> None:
        i = self._next_id
        if i == 0xD800:
            i = 0xE000
        if i > _MAX_ID:
            raise ValueError("more than 1.1 million distinct tokens; not supported")
        self._tok[t], self._next_id = i, i + 1
        if i >= len(self._rank):
            self._rank = np.resize(self._rank, 2 * i)
        self._rank[i] = self._new
        self._new += 1

    def _encode(self, text: str):
        """``(lcs string, token ids, sorted element keys)`` of ``text``; the last one is cached."""
        if self._last_enc[0] == text:
            return self._last_enc[1]
        tids = self._token_ids(text)
        seq = tids.astype("<u4").tobytes().decode("utf-32-le")
        enc = (seq, tids, self._keys(tids))
        self._last_enc = (text, enc)
        return enc

    def _keys(self, tids: np.ndarray) -> np.ndarray:
        """Sorted element keys ``rank << 24 | k`` (k-th occurrence of the token, from 0)."""
        n = len(tids)
        if n >= 1 << _K_BITS:
            raise ValueError("text too long (over 16 million tokens)")
        r = np.sort(self._rank[tids])           # equal ranks (one token) end up adjacent
        pos = np.arange(n)
        start = np.zeros(n, np.int64)
        np.copyto(start[1:], pos[1:], where=r[1:] != r[:-1])
        np.maximum.accumulate(start, out=start)
        return (r << _K_BITS) | (pos - start)

    def _prefix_len(self, m: int) -> int:
        return min(m, m - min_overlap(m, self.floor) + 1)

    # ------------------------------------------------------------------ the order

    def fit_order(self, texts) -> None:
        """Freeze the order from a corpus known in advance (e.g. the whole input file;
        texts added or queried later need not be in it). No rebuilds happen afterwards.
        Also caches the corpus's tokenisation."""
        texts = list(dict.fromkeys(texts))
        toks = [_fast_tokens(t, self.tokenizer) for t in texts]
        flat = list(chain.from_iterable(toks))       # one pass over all tokens, not one per text
        d = self._tok
        for t in dict.fromkeys(flat):
            if t not in d:
                self._new_token(t)
        ids = np.fromiter(map(d.__getitem__, flat), np.int32, len(flat))
        lens = np.fromiter(map(len, toks), np.int64, len(toks))
        end = 0
        for t, n in zip(texts, lens.tolist()):
            self._pre[t], end = ids[end:end + n], end + n
        self._freeze(self._doc_freq(ids, lens))
        self._fixed = True

    def _doc_freq(self, ids: np.ndarray, lens: np.ndarray) -> np.ndarray:
        """How many texts hold each token id (texts given as concatenated ids + lengths)."""
        pairs = np.sort(np.repeat(np.arange(len(lens), dtype=np.int64), lens) << 21 | ids)
        first = np.empty(len(pairs), bool)          # distinct (text, token) pairs; sorting is
        first[:1] = True                            # much faster than np.unique's hashing here
        np.not_equal(pairs[1:], pairs[:-1], out=first[1:])
        return np.bincount(pairs[first] & ((1 << 21) - 1), minlength=len(self._rank))

    def _freeze(self, df: np.ndarray) -> None:
        """Rank tokens by ``df`` (how many texts hold them), then by id; re-index every text."""
        ids = np.fromiter(self._tok.values(), np.int64, len(self._tok))
        order = ids[np.lexsort((ids, df[ids]))]
        self._rank[order] = _FROZEN + np.arange(len(order))
        self._new = 0
        self._last_enc = (None, None)
        self._post = {}
        for i, tids in enumerate(self._tids):
            self._index(i, self._keys(tids))

    def _maybe_refreeze(self) -> None:
        if self._fixed or len(self.texts) < self._next_freeze:
            return
        self._next_freeze *= 2
        lens = np.fromiter(map(len, self._tids), np.int64, len(self._tids))
        self._freeze(self._doc_freq(np.concatenate(self._tids), lens))

    # ------------------------------------------------------------------ index and query

    def _index(self, i: int, keys: np.ndarray) -> None:
        p = self._prefix_len(len(keys))
        post = self._post
        for key in keys[:p].tolist():
            lst = post.get(key)
            if lst is None:
                post[key] = array.array("i", (i,))
            else:
                lst.append(i)
        self._last[i] = keys[p - 1] if p else -1
        self._rest[i] = len(keys) - p

    def add(self, text: str) -> int:
        """Index ``text``; returns its id (its position in ``texts``)."""
        seq, tids, keys = self._encode(text)
        i = len(self.texts)
        if i >= len(self._len):
            self._len = np.resize(self._len, 2 * i)
            self._last = np.resize(self._last, 2 * i)
            self._rest = np.resize(self._rest, 2 * i)
        self.texts.append(text)
        self._seq.append(seq)
        self._tids.append(tids)
        self._len[i] = len(keys)
        self._index(i, keys)
        self._maybe_refreeze()
        return i

    def scores(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, scores)`` of the indexed texts that may score above the floor; every
        text left out scores <= floor."""
        seq, _, keys = self._encode(text)
        total, m = len(self.texts), len(keys)
        p = self._prefix_len(m)
        lists = [lst for lst in map(self._post.get, keys[:p].tolist()) if lst is not None]
        if not lists:
            self.pairs_pruned += total
            return np.zeros(0, np.int64), np.zeros(0)
        c = np.bincount(np.frombuffer(b"".join(lists), np.int32))
        ids = np.flatnonzero(c)
        c, n = c[ids], self._len[ids]
        rest = np.where(keys[p - 1] <= self._last[ids], m - p, self._rest[ids])
        bound = np.minimum(np.minimum(c + rest, n), m)
        ok = 2 * bound >= (self.floor - _EPS) * (m + n)
        ids, n = ids[ok], n[ok]
        self.pairs_compared += len(ids)
        self.pairs_pruned += total - len(ids)
        if len(ids) <= _FEW:      # a Python loop beats cdist's set-up cost here
            sim, seqs = LCSseq.similarity, self._seq
            return ids, np.array([fmeasure(sim(seq, seqs[i]), m, k) for i, k in zip(ids.tolist(), n.tolist())])
        lcs = process.cdist([seq], [self._seq[i] for i in ids.tolist()], scorer=LCSseq.similarity)[0]
        lcs = lcs.astype(np.float64)
        p_, r_ = lcs / n, lcs / m      # rouge-score's operations, elementwise: same floats
        with np.errstate(invalid="ignore"):
            f = np.where(lcs > 0, 2 * p_ * r_ / (p_ + r_), 0.0)
        return ids, f

    def nearest(self, text: str) -> tuple[float, int | None]:
        """``(score, id)`` of the most similar indexed text if it scores above the floor
        (exact; ties go to the earliest id), else ``(0.0, None)``."""
        ids, f = self.scores(text)
        above = f > self.floor
        if not above.any():
            return 0.0, None
        ids, f = ids[above], f[above]
        best = f.max()
        return float(best), int(ids[f == best].min())

    def is_duplicate(self, text: str) -> bool:
        """True when some indexed text scores above the threshold (rouge-score's ``> t``)."""
        score, i = self.nearest(text)
        return i is not None and score > self.threshold
