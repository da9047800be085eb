"""Model resolution: the GGUF conversion is checked, and its cache is versioned."""
from types import SimpleNamespace

import pytest

from selfinstruct import models
from selfinstruct.models import ModelError, check_conversion
from tiny import make_tiny_model_dir


def loaded(missing=(), unexpected=()):
    return SimpleNamespace(missing_keys=list(missing), unexpected_keys=list(unexpected))


@pytest.fixture(scope="module")
def tied_model(tmp_path_factory):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(make_tiny_model_dir(tmp_path_factory.mktemp("m") / "m", tie=True))


def test_only_a_tied_head_may_be_missing(tied_model):
    check_conversion(loaded(["lm_head.weight"]), tied_model, "x.gguf")  # tied: filled by tie_weights
    with pytest.raises(ModelError, match="x.gguf: converting the GGUF left weights unfilled.*layers.0"):
        check_conversion(loaded(["model.layers.0.mlp.up_proj.weight"]), tied_model, "x.gguf")
    with pytest.raises(ModelError, match="unexpected"):
        check_conversion(loaded([], ["model.extra.weight"]), tied_model, "x.gguf")


def test_an_untied_missing_head_is_refused(tmp_path):
    from transformers import AutoModelForCausalLM

    untied = AutoModelForCausalLM.from_pretrained(make_tiny_model_dir(tmp_path / "m", tie=False))
    with pytest.raises(ModelError):
        check_conversion(loaded(["lm_head.weight"]), untied, "x.gguf")


def test_the_cache_path_changes_with_converter_and_transformers(monkeypatch, tmp_path):
    import transformers

    monkeypatch.setenv("SELFINSTRUCT_CACHE", str(tmp_path))
    a = models.converted_dir("gemma3-270m")
    monkeypatch.setattr(models, "CONVERTER_VERSION", models.CONVERTER_VERSION + 1)
    b = models.converted_dir("gemma3-270m")
    monkeypatch.setattr(transformers, "__version__", "99.0.0")
    c = models.converted_dir("gemma3-270m")
    assert len({a, b, c}) == 3 and all(p.parent == tmp_path / "models" for p in (a, b, c))
