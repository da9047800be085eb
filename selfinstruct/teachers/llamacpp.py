"""The local engine: llama.cpp (``llama-cpp-python``) on a GGUF file, with continuous batching.

Up to ``parallel`` sequences decode together, one token each per step, in one
``llama_decode`` call; a finished sequence frees its slot at once and the next
prompt's prefill joins the same batch, so no answer waits for the longest one.
Prefill asks for logits at each prompt's last position only, and the tokens
that the prompts of a call start with (a template's instructions and few-shot
examples; up to ``PREFIXES`` different openings) are prefilled once and shared
through the KV cache. The packaged
models (the embedded Gemma 3 270M, SmolLM2) are read straight from their GGUF
files: no conversion.
"""
from __future__ import annotations

import ctypes
import json
import os
import weakref
from collections import deque
from dataclasses import dataclass, field

from .base import Completion, TeacherError, Usage, cut_at_stop, in_order, progress_bar

MIN_SHARED = 16  # a shared prompt prefix shorter than this is prefilled per sequence
PREFIXES = 4  # shared prefixes one call can hold (prompts grouped by their first MIN_SHARED tokens)
TOP_K = 64  # nucleus sampling over the 64 likeliest tokens: top-p 0.5 never needs more, and a full
#            262,144-token sort per step would cost more than the decode itself


@dataclass
class _Seq:
    """One prompt in flight: its slot, tokens still to prefill, and what it generated."""

    index: int
    slot: int
    prompt: list[int]
    max_new: int
    fed: int = 0  # prompt tokens already in the KV cache
    new: list[int] = field(default_factory=list)
    text: bytes = b""
    hit_eos: bool = False
    sampler: object = None


def _silence_logs(L) -> None:
    """llama.cpp logs every load to stderr; keep only errors."""
    @L.llama_log_callback
    def _log(level, text, user_data):  # noqa: ARG001
        if level >= 4 and text:  # GGML_LOG_LEVEL_ERROR
            os.write(2, text)

    L.llama_log_set(_log, ctypes.c_void_p(0))
    _silence_logs.callback = _log  # keep a reference: llama.cpp holds the pointer


def cpu_count() -> int:
    """The cores this process may run on (Linux: its affinity mask; elsewhere all of them)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _grammar(schema: dict) -> bytes:
    """GBNF for a JSON schema (llama-cpp-python's converter, the one its server uses)."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    return json_schema_to_gbnf(json.dumps(schema)).encode()


class LlamaCppTeacher:
    """A GGUF model on llama.cpp. With ``chat``, chat prompts go through the GGUF's own template."""

    def __init__(self, gguf_path: str, *, name: str, chat: bool = False, parallel: int = 16, context: int = 2048,
                 threads: int | None = None, seed: int = 0, repeat_penalty: float = 1.0, share_prefix: bool = True):
        try:
            import llama_cpp as L
        except ImportError as e:
            raise TeacherError(f"llama-cpp-python is not installed ({e})") from None
        self.L, self.name, self.seed, self._calls = L, name, seed, 0
        self.model = self.ctx = self.batch = None
        self._streams = weakref.WeakSet()  # open stream generators: close() ends them before freeing
        self.usage = Usage()
        self.parallel, self.context = max(1, parallel), context
        self.repeat_penalty = repeat_penalty  # over each sequence's last 64 tokens; 1.0 = off
        self.share_prefix = share_prefix  # sequences parallel .. parallel + PREFIXES - 1 hold shared prefixes
        limit = L.llama_max_parallel_sequences()
        if self.parallel + PREFIXES > limit:  # llama.cpp would only say it cannot create a context
            raise TeacherError(f"batch size {self.parallel} is over llama.cpp's limit of {limit - PREFIXES} "
                               f"sequences at a time ({limit} less {PREFIXES} for shared prompt prefixes)")
        _silence_logs(L)
        L.llama_backend_init()
        try:
            self._load(str(gguf_path), context, threads or cpu_count(), chat)
        except BaseException:
            self.close()  # free whatever was made
            raise

    def _load(self, gguf_path: str, context: int, threads: int, chat: bool) -> None:
        L = self.L
        self.model = L.llama_model_load_from_file(gguf_path.encode(), L.llama_model_default_params())
        if not self.model:
            raise TeacherError(f"{gguf_path}: llama.cpp cannot load this GGUF file")
        self.vocab = L.llama_model_get_vocab(self.model)
        self.context = min(context, L.llama_model_n_ctx_train(self.model))
        p = L.llama_context_default_params()
        p.n_ctx = self.context * (self.parallel + PREFIXES)
        p.n_batch = p.n_ubatch = 512
        p.n_seq_max = self.parallel + PREFIXES
        p.n_threads = p.n_threads_batch = threads
        p.kv_unified, p.swa_full, p.no_perf = True, True, True
        self.ctx = L.llama_init_from_model(self.model, p)
        if not self.ctx:
            raise TeacherError(f"{gguf_path}: llama.cpp cannot create a context of {p.n_ctx} tokens")
        self.n_batch = p.n_batch
        self.batch = L.llama_batch_init(self.n_batch, 0, 1)
        self.template = self._meta("tokenizer.chat_template") if chat else None  # none: a base model
        self.is_chat = bool(self.template)
        self.structured = self.is_chat  # chat replies may be held to a JSON schema (a grammar), as servers do
        self._piece = ctypes.create_string_buffer(256)

    def __repr__(self):
        return f"LlamaCppTeacher({self.name!r}, parallel={self.parallel})"

    # ------------------------------------------------------------------ text <-> tokens

    def _meta(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(1 << 16)
        n = self.L.llama_model_meta_val_str(self.model, key.encode(), buf, len(buf))
        return buf.value.decode("utf-8", "replace") if n > 0 else None

    def tokenize(self, text: str, *, special: bool) -> list[int]:
        data = text.encode("utf-8")
        size = len(data) + 8
        while True:
            arr = (self.L.llama_token * size)()
            n = self.L.llama_tokenize(self.vocab, data, len(data), arr, size, not special, special)
            if n >= 0:
                return list(arr[:n])
            size = -n

    def _special_text(self, token: int) -> str:
        """A special token's text (``<bos>``); '' when the model has none."""
        if token < 0:  # LLAMA_TOKEN_NULL
            return ""
        return (self.L.llama_vocab_get_text(self.vocab, token) or b"").decode("utf-8", "replace")

    def encode(self, prompt) -> list[int]:
        """Token ids: a string as it is (with BOS), chat messages through the model's chat template.

        The template is rendered with the model's own BOS and EOS text and tokenised without adding
        more, as transformers' ``apply_chat_template`` and llama-server do: a template that opens with
        ``{{ bos_token }}`` (Gemma, Llama 3, Mistral) starts with exactly one BOS."""
        if isinstance(prompt, str):
            return self.tokenize(prompt, special=False)
        if not self.template:
            raise TeacherError(f"{self.name} has no chat template; pass plain string prompts")
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        L = self.L
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        text = env.from_string(self.template).render(
            messages=prompt, add_generation_prompt=True, bos_token=self._special_text(L.llama_vocab_bos(self.vocab)),
            eos_token=self._special_text(L.llama_vocab_eos(self.vocab)))
        return self.tokenize(text, special=True)

    def _bytes(self, token: int, special: bool = False) -> bytes:
        n = self.L.llama_token_to_piece(self.vocab, token, self._piece, len(self._piece), 0, special)
        return self._piece.raw[:n] if n > 0 else b""

    # ------------------------------------------------------------------ the engine

    def _sampler(self, temperature: float, top_p: float, n: int, grammar: bytes | None = None):
        """One sampler chain per sequence (a repetition penalty and a grammar remember their own sequence's tokens)."""
        L = self.L
        chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
        if grammar:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_grammar(self.vocab, grammar, b"root"))
        if temperature > 0:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_k(TOP_K))
        if self.repeat_penalty != 1.0:  # greedy decoding is penalised too
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_penalties(
                L.llama_vocab_n_tokens(self.vocab), 64, self.repeat_penalty, 0.0, 0.0))
        if temperature > 0:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_temp(temperature))
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_p(top_p, 1))
            seed = (self.seed * 1000003 + self._calls * 9973 + n) & 0xFFFFFFFF
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_dist(seed))
        else:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_greedy())
        return chain

    def _fill(self, seqs: list[_Seq]) -> list[tuple[int, _Seq]]:
        """Put one step's tokens in the batch: a token per decoding sequence, then prompt chunks.

        Returns (batch position, sequence) for every position whose logits are wanted.
        """
        b, n, want = self.batch, 0, []

        def put(tok, pos, slot, logits):
            nonlocal n
            b.token[n], b.pos[n], b.n_seq_id[n], b.logits[n] = tok, pos, 1, logits
            b.seq_id[n][0] = slot
            n += 1

        for s in seqs:
            if s.fed == len(s.prompt):
                want.append((n, s))
                put(s.new[-1], len(s.prompt) + len(s.new) - 1, s.slot, True)
        for s in seqs:
            if s.fed < len(s.prompt) and n < self.n_batch:
                take = min(len(s.prompt) - s.fed, self.n_batch - n)
                for j in range(s.fed, s.fed + take):
                    last = j == len(s.prompt) - 1
                    if last:
                        want.append((n, s))
                    put(s.prompt[j], j, s.slot, last)
                s.fed += take
        b.n_tokens = n
        return want

    def _prefill_shared(self, ids: list[list[int]]) -> dict[int, tuple[int, int]]:
        """Prefill the openings that prompts share, each into its own sequence (``parallel`` + k).

        Returns ``{prompt index: (prefix sequence, prefix length)}`` for the prompts that share one.
        Each prompt keeps at least its last token to prefill itself (its logits start the answer).
        """
        if not self.share_prefix:
            return {}
        groups: dict[tuple, list[int]] = {}
        for i, p in enumerate(ids):
            if MIN_SHARED < len(p) < self.context:
                groups.setdefault(tuple(p[:MIN_SHARED]), []).append(i)
        shared = {}
        biggest = sorted((m for m in groups.values() if len(m) > 1), key=len, reverse=True)[:PREFIXES]
        for seq, members in enumerate(biggest, start=self.parallel):
            prefix = os.path.commonprefix([ids[i] for i in members])[: min(len(ids[i]) for i in members) - 1]
            self._prefill(prefix, seq)
            shared.update({i: (seq, len(prefix)) for i in members})
        return shared

    def _prefill(self, tokens: list[int], seq: int) -> None:
        b = self.batch
        for start in range(0, len(tokens), self.n_batch):
            chunk = tokens[start:start + self.n_batch]
            for n, tok in enumerate(chunk):
                b.token[n], b.pos[n], b.n_seq_id[n], b.logits[n] = tok, start + n, 1, False
                b.seq_id[n][0] = seq
            b.n_tokens = len(chunk)
            if self.L.llama_decode(self.ctx, b) != 0:
                raise TeacherError("llama.cpp failed to decode a batch (out of KV cache memory?)")

    def stream(self, prompts: list, **kw):
        """Yield ``(index, Completion)`` as each answer ends (continuous batching); the keywords are
        ``_stream``'s. The teacher keeps each stream until it ends, so that ``close`` can end it first."""
        if not self.ctx:
            raise TeacherError(f"{self.name}: the llama.cpp teacher is closed")
        gen = self._stream(prompts, **kw)
        self._streams.add(gen)
        return gen

    def _stream(self, prompts: list, *, max_tokens: int = 512, temperature: float = 0.7, top_p: float = 0.5,
                stop: list[str] | None = None, progress: str | None = None, schema: dict | None = None):
        """``schema`` (a JSON schema) holds every answer to it, through llama.cpp's grammar sampler."""
        L = self.L
        grammar = _grammar(schema) if schema is not None else None
        ids = [self.encode(p) for p in prompts]
        self._calls += 1
        queue = deque(sorted(range(len(ids)), key=lambda i: -len(ids[i])))
        free, active = list(range(self.parallel)), []
        mem = L.llama_get_memory(self.ctx)
        shared = {}
        longest_stop = max((len(s.encode()) for s in stop or () if s), default=0)
        try:
            shared = self._prefill_shared(ids)
            with progress_bar(len(ids), progress) as bar:
                while queue or active:
                    while queue and free:
                        i = queue.popleft()
                        if len(ids[i]) >= self.context:
                            self.usage.requests += 1
                            self.usage.failures += 1
                            bar.update(1)
                            yield i, Completion("", finish_reason="error", error=(
                                f"prompt of {len(ids[i])} tokens does not fit the context window of "
                                f"{self.context} tokens"))
                            continue
                        budget = min(max_tokens, self.context - len(ids[i]))
                        slot = free.pop()
                        seq, fed = shared.get(i, (None, 0))
                        if fed:  # the slot sees the shared prefix's cache cells; no copy, no compute
                            L.llama_memory_seq_cp(mem, seq, slot, -1, -1)
                        active.append(_Seq(i, slot, ids[i], budget, fed=fed,
                                           sampler=self._sampler(temperature, top_p, i, grammar)))
                    if not active:
                        continue
                    want = self._fill(active)
                    if L.llama_decode(self.ctx, self.batch) != 0:
                        raise TeacherError("llama.cpp failed to decode a batch (out of KV cache memory?)")
                    for pos, s in want:
                        tok = L.llama_sampler_sample(s.sampler, self.ctx, pos)
                        if L.llama_vocab_is_eog(self.vocab, tok):
                            s.hit_eos = True
                        else:
                            s.new.append(tok)
                            s.text += self._bytes(tok)
                    for s in [s for _, s in want if self._done(s, stop, longest_stop)]:
                        active.remove(s)
                        L.llama_memory_seq_rm(mem, s.slot, -1, -1)
                        L.llama_sampler_free(s.sampler)
                        free.append(s.slot)
                        self.usage.requests += 1
                        bar.update(1)
                        yield s.index, self._completion(s, stop)
        finally:
            for s in active:
                L.llama_memory_seq_rm(mem, s.slot, -1, -1)
                L.llama_sampler_free(s.sampler)
            for seq in {seq for seq, _ in shared.values()}:
                L.llama_memory_seq_rm(mem, seq, -1, -1)

    @staticmethod
    def _done(s: _Seq, stop, longest_stop: int) -> bool:
        if s.hit_eos or len(s.new) >= s.max_new:
            return True
        if not stop:
            return False
        tail = s.text[-(longest_stop + 64):].decode("utf-8", "ignore")
        return any(x and x in tail for x in stop)

    def _completion(self, s: _Seq, stop) -> Completion:
        text, cut = cut_at_stop(s.text.decode("utf-8", "replace"), stop)
        n_new = len(s.new) + s.hit_eos
        reason = "length" if not (cut or s.hit_eos) and len(s.new) >= s.max_new else "stop"
        self.usage.prompt_tokens += len(s.prompt)
        self.usage.completion_tokens += n_new
        return Completion(text, len(s.prompt), n_new, reason)

    def complete(self, prompts: list, **kw) -> list[Completion]:
        return in_order(self.stream(prompts, **kw), len(prompts))

    def close(self) -> None:
        """End the open streams (their cleanup needs the context), then free the batch, the context and the model.

        A stream left paused (its consumer raised mid-answer) would otherwise run its cleanup on freed memory
        when it is finally collected."""
        for gen in list(self._streams):
            gen.close()
        L = self.L
        if self.batch is not None:
            L.llama_batch_free(self.batch)
            self.batch = None
        if self.ctx:
            L.llama_free(self.ctx)
            self.ctx = None
        if self.model:
            L.llama_model_free(self.model)
            self.model = None
