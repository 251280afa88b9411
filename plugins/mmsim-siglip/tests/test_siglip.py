"""The SigLIP plugin: parity with SiglipModel, fixed-length padding, scale and bias."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import AutoProcessor, SiglipModel

from mmsim import Matcher
from mmsim.embedding.results import TruncationWarning
from mmsim.errors import CheckpointNotFoundError
from mmsim.plugin.testing import hub_cache

TEXTS = ["a red dog", "a cat", "a blue car"]  # short: the tiny tokenizer is nearly per-letter


@pytest.fixture(scope="module")
def reference(tiny_siglip_dir):
    return SiglipModel.from_pretrained(tiny_siglip_dir).eval(), AutoProcessor.from_pretrained(
        tiny_siglip_dir
    )


@pytest.fixture(scope="module")
def matcher(tiny_siglip_dir):
    return Matcher(
        "siglip", checkpoint=str(tiny_siglip_dir), query="image", response="text", progress=False
    )


def _features(output):
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def test_embeddings_equal_siglip_model(matcher, reference, image_paths):
    model, processor = reference
    images = [Image.open(p).convert("RGB") for p in image_paths]
    tokens = processor(text=TEXTS, padding="max_length", truncation=True, return_tensors="pt")
    with torch.no_grad():
        img = F.normalize(
            _features(model.get_image_features(**processor(images=images, return_tensors="pt"))),
            dim=-1,
        )
        txt = F.normalize(_features(model.get_text_features(**tokens)), dim=-1)
    assert (
        np.abs(matcher.extract_embedding([str(p) for p in image_paths]) - img.numpy()).max() < 1e-5
    )
    assert np.abs(matcher.extract_embedding(TEXTS) - txt.numpy()).max() < 1e-5


def test_texts_are_padded_to_the_trained_length(matcher):
    batch = matcher.text_tower.tokenize(["a dog"])
    assert batch.inputs["input_ids"].shape == (1, 16)


def test_scale_and_bias_give_siglips_own_pair_probability(matcher, reference, image_paths):
    model, processor = reference
    assert matcher.text_tower.logit_scale == pytest.approx(10.0)
    assert matcher.text_tower.logit_bias == pytest.approx(-10.0)
    images = [Image.open(p).convert("RGB") for p in image_paths[:2]]
    inputs = processor(text=TEXTS[:2], images=images, padding="max_length", return_tensors="pt")
    with torch.no_grad():
        expected = torch.sigmoid(model(**inputs).logits_per_image.diagonal()).numpy()
    cos = matcher.score_pairs({"image": [str(p) for p in image_paths[:2]], "text": TEXTS[:2]})
    own = 1 / (1 + np.exp(-(matcher.text_tower.logit_scale * cos + matcher.text_tower.logit_bias)))
    assert np.abs(own - expected).max() < 1e-5


def test_truncation_is_reported(matcher):
    with pytest.warns(TruncationWarning, match="1 of 2 texts .* 16 tokens"):
        matcher.extract_embedding(["a dog", "a photo of a red dog on the beach " * 4])


def test_hub_id_from_cache_and_offline_error(tiny_siglip_dir, tmp_path, monkeypatch, matcher):
    cache = hub_cache(tmp_path / "hub", "acme/tiny-siglip", tiny_siglip_dir)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cached = Matcher(
        "siglip",
        checkpoint="acme/tiny-siglip",
        encoder_options={"cache_dir": str(cache)},
        progress=False,
    )
    assert np.abs(cached.extract_embedding(TEXTS) - matcher.extract_embedding(TEXTS)).max() == 0
    with pytest.raises(CheckpointNotFoundError, match="'google/siglip-base-patch16-224'"):
        Matcher("siglip", encoder_options={"cache_dir": str(tmp_path / "empty")})


def test_a_non_siglip_checkpoint_is_refused(tiny_clip_dir):
    with pytest.raises(Exception, match="is a 'clip' model; this encoder loads siglip and siglip2"):
        Matcher("siglip", checkpoint=str(tiny_clip_dir))


def test_siglip2_embeddings_equal_siglip2_model(tmp_path, image_paths):
    from transformers import AutoProcessor, Siglip2Model

    from mmsim_siglip.testing import save_random_siglip2

    checkpoint = save_random_siglip2(tmp_path / "siglip2")
    matcher = Matcher("siglip", checkpoint=str(checkpoint), progress=False)
    model = Siglip2Model.from_pretrained(checkpoint).eval()
    processor = AutoProcessor.from_pretrained(checkpoint)
    images = [Image.open(p).convert("RGB") for p in image_paths]
    texts = ["a dog", "a red car"]
    pixels = processor.image_processor(images=images, return_tensors="pt")  # patches + mask
    tokens = processor.tokenizer(texts, padding="max_length", max_length=16, return_tensors="pt")
    with torch.no_grad():
        img = F.normalize(_features(model.get_image_features(**pixels)), dim=-1).numpy()
        txt = F.normalize(_features(model.get_text_features(**tokens)), dim=-1).numpy()
    assert np.abs(matcher.extract_embedding([str(p) for p in image_paths]) - img).max() < 1e-5
    assert np.abs(matcher.extract_embedding(texts) - txt).max() < 1e-5
    assert matcher.text_tower.logit_bias == pytest.approx(-10.0)


# --- the text convention SigLIP and SigLIP 2 were trained with (issue #9, part 1) ----------
# big_vision tokenises `pieces + EOS` (no BOS), pads on the right to the fixed length and
# keeps the EOS when it cuts ("sticky"); SigLIP 2 lower-cases first; the text model
# attends to every position and pools the last. transformers' conversion scripts build
# the tokenizers with model_input_names=["input_ids"] (and, for SigLIP 2, no BOS, EOS,
# right padding), so the reference below is that tokenizer called as the conversion
# script calls it, never mmsim's own tokenizer call.

LENGTH = 16  # the tiny models' trained text length


def _conversion_tokenizer(kind, checkpoint):
    from mmsim_siglip.testing import siglip2_tokenizer, siglip_tokenizer

    if kind == "siglip":
        return siglip_tokenizer(checkpoint / "spiece.model", LENGTH)
    return siglip2_tokenizer(LENGTH)


def _captions(tokenizer, lower):
    """A short caption, one of exactly LENGTH tokens (EOS included), one over it."""
    prep = (lambda t: t.lower()) if lower else (lambda t: t)
    n = lambda t: len(tokenizer(prep(t))["input_ids"])  # noqa: E731
    words = ("a photo of a red dog on the beach there is a blue car near a lake " * 3).split()
    prefixes = [" ".join(words[:k]) for k in range(1, len(words) + 1)]
    prefixes += [prefixes[-1][:k] for k in range(1, len(prefixes[-1]))]
    exact = next(t for t in prefixes if n(t) == LENGTH)
    return ["A Red Dog", exact, "A photo of a red dog on the beach " * 4]


@pytest.fixture(scope="module")
def siglip_checkpoints(tmp_path_factory):
    """Per kind: the conversion-script checkpoint and copies whose saved tokenizer uses
    the class defaults (same model weights)."""
    import shutil

    from mmsim_siglip.testing import (
        save_random_siglip,
        save_random_siglip2,
        siglip2_tokenizer,
        siglip_tokenizer,
    )

    root = tmp_path_factory.mktemp("siglip_conventions")
    out = {}
    for kind, save in (("siglip", save_random_siglip), ("siglip2", save_random_siglip2)):
        main = save(root / kind)
        variants = {}
        if kind == "siglip":
            variants["no_input_names"] = siglip_tokenizer(
                main / "spiece.model", LENGTH, input_ids_only=False
            )
        else:
            variants["no_input_names"] = siglip2_tokenizer(LENGTH, input_ids_only=False)
            variants["class_defaults"] = siglip2_tokenizer(LENGTH, class_defaults=True)
        copies = {}
        for name, tokenizer in variants.items():
            copy = root / f"{kind}-{name}"
            shutil.copytree(main, copy)
            tokenizer.save_pretrained(copy)
            copies[name] = copy
        out[kind] = (main, copies)
    return out


def _siglip_model(kind, checkpoint):
    from transformers import AutoModel

    model = AutoModel.from_pretrained(checkpoint).eval()
    assert model.config.model_type == kind
    return model


@pytest.mark.parametrize("kind", ["siglip", "siglip2"])
def test_text_embeddings_follow_the_conversion_convention(kind, siglip_checkpoints):
    """Padded short, exactly-full and over-length captions: mmsim's ids and embeddings
    are those of the conversion script's tokenizer fed to get_text_features."""
    checkpoint, _ = siglip_checkpoints[kind]
    reference = _conversion_tokenizer(kind, checkpoint)
    lower = kind == "siglip2"  # big_vision: lower|tok(...); the saved tokenizer does too
    texts = _captions(reference, lower)
    tokens = reference(
        [t.lower() for t in texts] if lower else texts,
        padding="max_length",
        max_length=LENGTH,
        truncation=True,
        return_tensors="pt",
    )
    assert set(tokens) == {"input_ids"}  # "the original one doesn't require it"
    ref_ids = tokens["input_ids"]
    eos, pad = reference.eos_token_id, reference.pad_token_id
    assert ref_ids[1, -1] == eos and ref_ids[2, -1] == eos  # full; over-length keeps EOS
    assert ref_ids[0, -1] == pad  # right padding: the pooled position is padding
    pieces = reference(texts[2].lower() if lower else texts[2], add_special_tokens=False)
    assert ref_ids[2].tolist() == [*pieces["input_ids"][: LENGTH - 1], eos]  # sticky EOS

    matcher = Matcher("siglip", checkpoint=str(checkpoint), progress=False)
    batch = matcher.text_tower.tokenize(texts)
    assert set(batch.inputs) == {"input_ids"}
    assert torch.equal(batch.inputs["input_ids"], ref_ids)
    assert batch.truncated == [2]
    with torch.no_grad():
        expected = F.normalize(
            _features(_siglip_model(kind, checkpoint).get_text_features(input_ids=ref_ids)),
            dim=-1,
        ).numpy()
    with pytest.warns(TruncationWarning):
        got = matcher.extract_embedding(texts)
    assert np.abs(got - expected).max() < 1e-5


@pytest.mark.parametrize("kind", ["siglip", "siglip2"])
def test_saved_tokenizer_settings_do_not_change_text_embeddings(kind, siglip_checkpoints):
    """A tokenizer saved with or without model_input_names=["input_ids"] (SigLIP 2: also
    Siglip2Tokenizer's class defaults: left padding, no EOS) gives identical embeddings."""
    checkpoint, copies = siglip_checkpoints[kind]
    texts = _captions(_conversion_tokenizer(kind, checkpoint), kind == "siglip2")
    expected = Matcher("siglip", checkpoint=str(checkpoint), progress=False)
    with pytest.warns(TruncationWarning):
        want = expected.extract_embedding(texts)
    for name, copy in copies.items():
        matcher = Matcher("siglip", checkpoint=str(copy), progress=False)
        saved = matcher.text_tower.tokenizer(texts[:1], padding="max_length", max_length=LENGTH)
        if name == "no_input_names":  # the saved tokenizer really does return a mask
            assert "attention_mask" in saved
        with pytest.warns(TruncationWarning):
            got = matcher.extract_embedding(texts)
        assert np.abs(got - want).max() < 1e-6, name


@pytest.mark.parametrize("kind", ["siglip", "siglip2"])
def test_exported_tokenizer_gives_the_towers_ids(kind, siglip_checkpoints, tmp_path):
    """The export's tokenizer (read by mmsim-onnx) reproduces the torch tower's ids, with
    no attention mask, for each saved tokenizer variant."""
    from mmsim_onnx.tokenize import TextTokenizer

    main, copies = siglip_checkpoints[kind]
    texts = [*_captions(_conversion_tokenizer(kind, main), kind == "siglip2"), "x"]
    for checkpoint in (main, *copies.values()):
        tower = Matcher("siglip", checkpoint=str(checkpoint), progress=False).text_tower
        export = tower.export_onnx()
        out = tmp_path / checkpoint.name
        out.mkdir()
        for file, data in export.files.items():
            (out / file).write_bytes(data)
        feeds, truncated = TextTokenizer(out, export.spec)(texts)
        batch = tower.tokenize(texts)
        assert set(feeds) == {"input_ids"}
        np.testing.assert_array_equal(feeds["input_ids"], batch.inputs["input_ids"].numpy())
        assert truncated == batch.truncated == [2]


@pytest.mark.parametrize("kind", ["siglip", "siglip2"])
def test_image_tower_passes_only_the_trained_inputs(kind, siglip_checkpoints, image_paths):
    """SigLIP: pixels; SigLIP 2 (NaFlex): patches, their padding mask and grid shapes."""
    matcher = Matcher("siglip", checkpoint=str(siglip_checkpoints[kind][0]), progress=False)
    inputs = matcher.image_tower.preprocess([Image.open(image_paths[0]).convert("RGB")])
    expected = {"pixel_values"} | (
        {"pixel_attention_mask", "spatial_shapes"} if kind == "siglip2" else set()
    )
    assert set(inputs) == expected
