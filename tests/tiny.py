"""Tiny test models: a random Llama from a config + a real BPE tokenizer trained offline.

Other test modules reuse ``make_tiny_model_dir(path) -> path``: the folder is a
plain transformers checkpoint (config, safetensors, tokenizer, generation
config) that ``AutoModelForCausalLM.from_pretrained`` and
``selfinstruct.models.resolve_model`` accept. Building one takes well under a second.
"""
from __future__ import annotations

from pathlib import Path

from selfinstruct.data.formatting import PROMPT_INPUT, PROMPT_NO_INPUT

SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>"]  # ids 0, 1, 2, 3 (Gemma's order)
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}"
    "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
CORPUS = [
    PROMPT_INPUT, PROMPT_NO_INPUT,
    "Give three tips for staying healthy. Eat a balanced diet, exercise regularly and sleep well.",
    "What is the capital of France? The capital of France is Paris.",
    "Translate the sentence into Spanish. Hello, how are you? Hola, como estas?",
    "Write a short poem about the sea. The waves are blue, the sky is too.",
    "Classify the sentiment of the review as positive or negative. I loved it! positive",
    "Summarize the paragraph in one sentence. Rewrite the text to be more formal.",
    "List the first five prime numbers: 2, 3, 5, 7, 11. Compute 12 * 7 = 84.",
    "user assistant system <|user|> <|assistant|> <|system|>",
]


def make_tokenizer(vocab_size: int = 600, corpus: list[str] | None = None, chat_template: bool = True,
                   split_words: bool = True):
    """A byte-level BPE tokenizer (any text encodes) that prepends <bos>, like Llama/Gemma.

    ``split_words=False`` lets merges cross word and whitespace boundaries (as
    SentencePiece tokenizers such as Gemma's do), e.g. ``":\n" + "\n"`` -> ``":\n\n"``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=split_words)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus or CORPUS * 4, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A <bos> $B",
                                                       special_tokens=[("<bos>", 2)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>",
                                   pad_token="<pad>", unk_token="<unk>")
    if chat_template:
        fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_config(vocab_size: int, *, hidden: int = 32, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                intermediate: int = 64, tie: bool = True, max_positions: int = 2048):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                       num_attention_heads=heads, num_key_value_heads=kv_heads, intermediate_size=intermediate,
                       max_position_embeddings=max_positions, tie_word_embeddings=tie,
                       pad_token_id=0, eos_token_id=1, bos_token_id=2)


def make_tiny_model_dir(path, *, chat_template: bool = True, seed: int = 0, **config_kwargs) -> Path:
    """Write a tiny random Llama + BPE tokenizer checkpoint to ``path``; return the folder."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = make_tokenizer(chat_template=chat_template)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(len(tok), **config_kwargs), dtype=torch.float32)
    model.generation_config = GenerationConfig(bos_token_id=2, eos_token_id=1, pad_token_id=0)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def model_and_data(root: Path, rows: list[dict]) -> tuple[Path, Path, Path]:
    """(root, a tiny model folder, a JSONL file of ``rows``): what the training tests start from."""
    import json

    base = make_tiny_model_dir(root / "base")
    data = root / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root, base, data


def metrics(out: Path, kind: str) -> list[dict]:
    """The records of one ``type`` in a train run's metrics.jsonl."""
    import json

    return [r for r in map(json.loads, (Path(out) / "metrics.jsonl").read_text().splitlines()) if r["type"] == kind]
