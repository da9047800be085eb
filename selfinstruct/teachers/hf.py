"""Local transformers models: the ``hf:`` teacher, and the one batched ``generate`` that eval shares.

Batches hold prompts of similar length (left padding). On a GPU, or on a CPU
with native bf16 (AVX-512 BF16 or AMX), the model runs in bf16; else fp32.
"""
from __future__ import annotations

from .base import Completion, TeacherError, Usage, cut_at_stop, in_order, progress_bar


def stop_ids(model, tokenizer) -> set[int]:
    """Every id that ends an answer: the generation config's EOS ids and the tokenizer's EOS.

    The pad id is not among them unless it *is* an EOS (pad == eos, as for Llama 3's
    ``<|eot_id|>``): generation then stops there too, and never runs to the token limit.
    """
    ids = set()
    for v in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if v is not None:
            ids.update(v if isinstance(v, (list, tuple)) else [v])
    return ids


def answer_end(row: list[int], stops: set[int], pad_id: int | None) -> tuple[int, bool]:
    """(tokens before the end, whether an EOS ended it) for one generated row.

    A finished row is filled with ``pad_id`` after its EOS, so a pad also marks the end.
    """
    for j, t in enumerate(row):
        if t in stops:
            return j, True
        if t == pad_id:
            return j, False
    return len(row), False


def recent_penalty(penalty: float, start: int, last_n: int = 64):
    """llama.cpp's repeat penalty as a transformers logits processor: the logit of each token among a
    row's last ``last_n`` generated tokens (from column ``start`` on; the prompt is not counted) is
    divided by ``penalty`` when positive and multiplied by it when not."""
    import torch
    from transformers import LogitsProcessor

    class RecentPenalty(LogitsProcessor):
        def __call__(self, input_ids, scores):
            recent = input_ids[:, start:][:, -last_n:]
            if recent.shape[1] == 0:
                return scores
            picked = scores.gather(1, recent)
            return scores.scatter(1, recent, torch.where(picked > 0, picked / penalty, picked * penalty))

    return RecentPenalty()


def generate(model, tokenizer, ids: list[list[int]], *, max_new_tokens: int, temperature: float = 0.0,
             top_p: float = 1.0, batch_size: int = 8, stopping=None, progress: str | None = None,
             unit: str = "req", repeat_penalty: float = 1.0):
    """Yield ``(index, new_token_ids, hit_eos)`` for each prompt (token ids), batch by batch.

    Batches hold prompts of similar length; greedy unless ``temperature`` > 0. ``stopping`` is
    a callable ``n_prompt_tokens -> StoppingCriteriaList | None``. The ids stop before the end.
    ``repeat_penalty`` (1 = off) works as llama.cpp's, over each row's last 64 generated tokens.
    """
    from transformers import LogitsProcessorList

    import torch

    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    stops = stop_ids(model, tokenizer)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    sampling = dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=0) if temperature > 0 \
        else dict(do_sample=False, temperature=None, top_p=None, top_k=None)
    model.eval()
    with progress_bar(len(ids), progress, unit=unit) as bar, torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            enc = tokenizer.pad({"input_ids": [ids[i] for i in batch]}, return_tensors="pt").to(model.device)
            n_in = enc["input_ids"].shape[1]
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=sorted(stops) or None,
                                 stopping_criteria=stopping(n_in) if stopping else None,
                                 logits_processor=LogitsProcessorList(
                                     [recent_penalty(repeat_penalty, n_in)] if repeat_penalty != 1.0 else []),
                                 **sampling)
            for i, row in zip(batch, gen[:, n_in:].tolist()):
                end, hit_eos = answer_end(row, stops, tokenizer.pad_token_id)
                yield i, row[:end], hit_eos
            bar.update(len(batch))


class HFTeacher:
    """A local transformers model, generating ``batch_size`` prompts at a time."""

    def __init__(self, spec: str, *, batch_size: int = 8, trust_remote_code: bool = False, seed: int = 0,
                 device: str | None = None, name: str | None = None, is_chat: bool | None = None,
                 repeat_penalty: float = 1.0):
        from ..models import ModelError, generation_dtype, load_model_and_tokenizer

        try:
            self.model, self.tokenizer = load_model_and_tokenizer(
                spec, device=device, dtype=generation_dtype(device), trust_remote_code=trust_remote_code)
        except ModelError as e:
            raise TeacherError(str(e)) from None
        tok = self.tokenizer
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        self.name = name or f"hf:{spec}"
        self.is_chat = bool(getattr(tok, "chat_template", None)) if is_chat is None else is_chat
        self.usage = Usage()
        self.batch_size, self.seed, self._calls = max(1, batch_size), seed, 0
        self.repeat_penalty = repeat_penalty  # as llama.cpp's: over each answer's last 64 tokens; 1.0 = off
        self._stop_criteria = {}

    def __repr__(self):
        return f"HFTeacher({self.name!r})"

    def encode(self, prompt) -> list[int]:
        """Token ids for one prompt: chat messages through the chat template, strings as they are."""
        tok = self.tokenizer
        if isinstance(prompt, str):
            return tok(prompt, add_special_tokens=True)["input_ids"]
        if not getattr(tok, "chat_template", None):
            raise TeacherError(f"{self.name} has no chat template; pass plain string prompts")
        text = tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
        return tok(text, add_special_tokens=False)["input_ids"]

    def _criteria(self, stop):
        from transformers import StoppingCriteriaList, StopStringCriteria

        key = tuple(s for s in stop or () if s)
        if not key:
            return None
        if key not in self._stop_criteria:  # building one scans the whole vocabulary
            self._stop_criteria[key] = StoppingCriteriaList([StopStringCriteria(self.tokenizer, list(key))])
        return self._stop_criteria[key]

    def stream(self, prompts: list, *, max_tokens: int = 512, temperature: float = 0.7, top_p: float = 0.5,
               stop: list[str] | None = None, progress: str | None = None):
        """Yield ``(index, Completion)`` batch by batch."""
        import torch

        ids = [self.encode(p) for p in prompts]
        torch.manual_seed(self.seed + self._calls)
        self._calls += 1
        criteria = self._criteria(stop)
        for i, row, hit_eos in generate(self.model, self.tokenizer, ids, max_new_tokens=max_tokens,
                                        temperature=temperature, top_p=top_p, batch_size=self.batch_size,
                                        stopping=lambda n: criteria, progress=progress,
                                        repeat_penalty=self.repeat_penalty):
            self.usage.requests += 1
            yield i, self._completion(row, hit_eos, len(ids[i]), max_tokens, stop)

    def complete(self, prompts: list, **kw) -> list[Completion]:
        return in_order(self.stream(prompts, **kw), len(prompts))

    def _completion(self, row: list[int], hit_eos: bool, n_prompt: int, max_tokens: int, stop) -> Completion:
        n_new = len(row) + hit_eos
        text, cut = cut_at_stop(self.tokenizer.decode(row, skip_special_tokens=True), stop)
        reason = "length" if not (cut or hit_eos) and n_new >= max_tokens else "stop"
        self.usage.prompt_tokens += n_prompt
        self.usage.completion_tokens += n_new
        return Completion(text, n_prompt, n_new, reason)

    def close(self) -> None:
        """Free the model (and GPU memory)."""
        import gc

        import torch

        self.model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
