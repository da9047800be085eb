"""A fake ``llama_cpp`` module: the C API that ``teachers/llamacpp.py`` calls, over a toy model, with
every handle's lifetime checked. It gives the engine fast tests (the real one needs a GGUF file).

``install(monkeypatch, ...)`` puts it in ``sys.modules`` and returns it. What it records:

- ``errors``: each misuse, one line: a call on a freed context, memory, batch, model or sampler, a double
  free, a batch position that does not follow its sequence's cache, a sequence id out of range;
- ``calls``: every call's name, in order; ``chains``: every sampler chain made (its stages, whether freed);
- ``params``: the last context parameters asked for.

The toy model: the tokenizer is a transformers tokenizer (``tests/tiny.make_tokenizer``); the next token
is a function of every token in the sequence's KV cache (so a cache that misses or repeats a token shows
in the answer), and EOS comes when the sequence length is a multiple of 23. A penalties stage in a chain
makes it pick another token than one of the chain's last 64.
"""
from __future__ import annotations

import ctypes
import sys
import types
from types import SimpleNamespace

EOS_EVERY = 23


def next_token(seq, eos: int) -> int:
    """The toy model's greedy choice after the tokens ``seq``."""
    if len(seq) % EOS_EVERY == 0:
        return eos
    return 4 + sum(t * (i + 1) for i, t in enumerate(seq)) % 7  # a few tokens: answers repeat them


def greedy_answer(prompt_ids: list[int], eos: int, max_new: int) -> list[int]:
    """The toy model's greedy answer, one sequence alone (without its EOS)."""
    seq, new = list(prompt_ids), []
    while len(new) < max_new:
        tok = next_token(seq, eos)
        if tok == eos:
            break
        seq.append(tok)
        new.append(tok)
    return new


class _Handle:
    def __init__(self, kind: str, **kw):
        self.kind, self.freed = kind, False
        self.__dict__.update(kw)

    def __repr__(self):
        return f"<{self.kind}{' freed' if self.freed else ''}>"


def make_module(tokenizer, *, chat_template: str | None = None, n_ctx_train: int = 512, max_seq: int = 64,
                fail_context: bool = False, fail_load: bool = False) -> types.ModuleType:
    L = types.ModuleType("llama_cpp")
    L.errors, L.calls, L.chains, L.params = [], [], [], None
    n_vocab = len(tokenizer)
    eos, bos = tokenizer.eos_token_id, tokenizer.bos_token_id

    def api(fn):
        def wrapped(*args):
            L.calls.append(fn.__name__)
            for a in args:
                if isinstance(a, _Handle) and (a.freed or getattr(a, "owner", None) is not None and a.owner.freed):
                    L.errors.append(f"{fn.__name__} on freed {a.kind}")
            return fn(*args)
        wrapped.__name__ = fn.__name__
        setattr(L, fn.__name__, wrapped)
        return wrapped

    def free(h, name):
        if h.freed:
            L.errors.append(f"{name}: double free of {h.kind}")
        h.freed = True

    L.llama_token = ctypes.c_int32
    L.llama_log_callback = lambda f: f

    @api
    def llama_log_set(cb, user_data): pass

    @api
    def llama_backend_init(): pass

    @api
    def llama_max_parallel_sequences(): return max_seq

    @api
    def llama_model_default_params(): return SimpleNamespace()

    @api
    def llama_model_load_from_file(path, params):
        return None if fail_load else _model()

    @api
    def llama_model_get_vocab(model): return model.vocab

    @api
    def llama_model_n_ctx_train(model): return n_ctx_train

    @api
    def llama_model_meta_val_str(model, key, buf, size):
        value = {b"tokenizer.chat_template": chat_template}.get(key)
        if value is None:
            return -1
        data = value.encode()
        buf.value = data[:size - 1]
        return len(data)

    @api
    def llama_context_default_params(): return SimpleNamespace()

    @api
    def llama_init_from_model(model, p):
        L.params = p
        if fail_context or p.n_seq_max > max_seq:
            return None
        ctx = _Handle("context", n_batch=p.n_batch, n_seq_max=p.n_seq_max, out={})
        ctx.memory = _Handle("memory", owner=ctx, cells={})
        return ctx

    @api
    def llama_batch_init(n, embd, n_seq_max):
        return _Handle("batch", token=[0] * n, pos=[0] * n, n_seq_id=[0] * n, logits=[False] * n,
                       seq_id=[[0] for _ in range(n)], n_tokens=0)

    @api
    def llama_get_memory(ctx): return ctx.memory

    @api
    def llama_memory_seq_cp(mem, src, dst, p0, p1): mem.cells[dst] = list(mem.cells.get(src, []))

    @api
    def llama_memory_seq_rm(mem, seq, p0, p1): mem.cells.pop(seq, None)

    @api
    def llama_decode(ctx, b):
        if b.freed:
            return -1
        cells, ctx.out = ctx.memory.cells, {}  # logits live until the next decode
        for i in range(b.n_tokens):
            seq, pos = b.seq_id[i][0], b.pos[i]
            if not 0 <= seq < ctx.n_seq_max:
                L.errors.append(f"llama_decode: sequence {seq} out of range")
            have = cells.setdefault(seq, [])
            if pos != len(have):
                L.errors.append(f"llama_decode: sequence {seq} position {pos} after {len(have)} cached tokens")
            have.append(b.token[i])
            if b.logits[i]:
                ctx.out[i] = tuple(have)
        return 0

    @api
    def llama_vocab_n_tokens(vocab): return n_vocab

    @api
    def llama_vocab_is_eog(vocab, tok): return tok == eos

    @api
    def llama_vocab_bos(vocab): return -1 if bos is None else bos

    @api
    def llama_vocab_eos(vocab): return eos

    @api
    def llama_vocab_get_text(vocab, tok): return tokenizer.convert_ids_to_tokens(tok).encode()

    @api
    def llama_tokenize(vocab, data, n, arr, size, add_special, parse_special):
        ids = tokenizer(data[:n].decode(), add_special_tokens=add_special,
                        split_special_tokens=not parse_special)["input_ids"]
        if len(ids) > size:
            return -len(ids)
        for i, t in enumerate(ids):
            arr[i] = t
        return len(ids)

    @api
    def llama_token_to_piece(vocab, tok, buf, size, lstrip, special):
        if tok in tokenizer.all_special_ids and not special:
            return 0
        piece = tokenizer.decode([tok]).encode()[:size]
        ctypes.memmove(buf, piece, len(piece))
        return len(piece)

    # ---------------------------------------------------------------- samplers

    @api
    def llama_sampler_chain_default_params(): return SimpleNamespace()

    @api
    def llama_sampler_chain_init(params):
        chain = _Handle("sampler", stages=[], recent=[])
        L.chains.append(chain)
        return chain

    @api
    def llama_sampler_chain_add(chain, stage): chain.stages.append(stage)

    for name in ("grammar", "top_k", "penalties", "temp", "top_p", "dist", "greedy"):
        def init(*args, _name=name):
            return (_name, *args)
        init.__name__ = f"llama_sampler_init_{name}"
        api(init)

    @api
    def llama_sampler_sample(chain, ctx, pos):
        seq = ctx.out.get(pos)
        if seq is None:
            L.errors.append(f"llama_sampler_sample: no logits at batch position {pos}")
            return eos
        tok = next_token(seq, eos)
        penalties = [s for s in chain.stages if s[0] == "penalties"]
        if penalties and tok != eos:
            while tok in chain.recent[-penalties[0][2]:]:
                tok = 4 + (tok - 4 + 1) % (n_vocab - 4)
        chain.recent.append(tok)
        return tok

    @api
    def llama_sampler_free(chain): free(chain, "llama_sampler_free")

    @api
    def llama_batch_free(b): free(b, "llama_batch_free")

    @api
    def llama_free(ctx): free(ctx, "llama_free")

    @api
    def llama_model_free(model): free(model, "llama_model_free")

    def _model():
        model = _Handle("model")
        model.vocab = _Handle("vocab", owner=model)
        return model

    grammar = types.ModuleType("llama_cpp.llama_grammar")
    grammar.json_schema_to_gbnf = lambda schema: "root ::= object"
    L.llama_grammar = grammar
    return L


def install(monkeypatch, tokenizer=None, **kw) -> types.ModuleType:
    """Put a fake ``llama_cpp`` in ``sys.modules`` (``make_module``'s keywords) and return it."""
    if tokenizer is None:
        from tiny import make_tokenizer

        tokenizer = make_tokenizer()
    L = make_module(tokenizer, **kw)
    monkeypatch.setitem(sys.modules, "llama_cpp", L)
    monkeypatch.setitem(sys.modules, "llama_cpp.llama_grammar", L.llama_grammar)
    return L


def live_chains(L) -> list:
    """Sampler chains made and never freed."""
    return [c for c in L.chains if not c.freed]
