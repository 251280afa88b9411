"""Fine-tuning: losses, freezing, best checkpoint in the native format, logs, inputs."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mmsim import Matcher, synthetic
from mmsim.embedding import TruncationWarning
from mmsim.errors import ConfigError, ItemError
from mmsim.finetune import lr_factor, validate
from mmsim.losses import clip_loss, positives_matrix, siglip_loss, with_negatives
from mmsim.pairs import read_pairs

SCRATCH = {
    "text_config": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 16,
    },
    "vision_config": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 32,
        "patch_size": 8,
    },
    "projection_dim": 32,
}
FAST = {"batch_size": 32, "lr": 1e-3, "warmup_steps": 5, "weight_decay": 0.0}


@pytest.fixture(scope="module")
def scratch_clip(tmp_path_factory) -> Path:
    """A small random CLIP with a tokenizer over the scene vocabulary."""
    from mmsim_openai_clip.scratch import save_new_clip, word_tokenizer

    folder = tmp_path_factory.mktemp("scratch_clip")
    tokenizer = word_tokenizer(folder, synthetic.VOCABULARY, max_length=16)
    return save_new_clip(folder, tokenizer, SCRATCH, seed=0)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return synthetic.write_dataset(
        tmp_path_factory.mktemp("shapes"), 64, seed=0, size=32, renderer="canonical"
    )


def _matcher(checkpoint: Path, encoder: str = "openai_clip") -> Matcher:
    return Matcher(encoder, checkpoint=str(checkpoint), progress=False)


# -- losses -------------------------------------------------------------------------------
def _towers_config() -> dict:
    tower = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1}
    return {
        "text_config": {**tower, "num_attention_heads": 2, "vocab_size": 99},
        "vision_config": {**tower, "num_attention_heads": 2, "image_size": 16, "patch_size": 8},
    }


def _upstream_loss(model_class, config_class, ours):
    """The upstream model's own loss (``return_loss=True``) vs ours on its embeddings."""
    torch.manual_seed(0)
    config = config_class(**_towers_config())
    model = model_class(config).eval()
    ids = torch.randint(1, 98, (6, 7))
    ids[:, -1] = 98  # distinct rows, a fixed last token
    with torch.no_grad():
        out = model(input_ids=ids, pixel_values=torch.randn(6, 3, 16, 16), return_loss=True)
        mine = ours(model, out.image_embeds, out.text_embeds)
    return out.loss, mine


def test_clip_loss_equals_clipmodels_own_loss_when_pairs_are_distinct():
    from transformers import CLIPConfig, CLIPModel

    upstream, ours = _upstream_loss(
        CLIPModel,
        CLIPConfig,
        lambda m, i, t: clip_loss(i, t, m.logit_scale.exp(), torch.eye(6)),
    )
    assert ours.item() == pytest.approx(upstream.item(), rel=1e-5)


def test_siglip_loss_equals_siglipmodels_own_loss():
    from transformers import SiglipConfig, SiglipModel

    upstream, ours = _upstream_loss(
        SiglipModel,
        SiglipConfig,
        lambda m, i, t: siglip_loss(i, t, m.logit_scale.exp(), m.logit_bias, torch.eye(6)),
    )
    assert ours.item() == pytest.approx(upstream.item(), rel=1e-5)


def test_an_image_with_several_captions_is_not_its_own_negative():
    positives = positives_matrix(["cat.jpg", "cat.jpg", "dog.jpg"], ["a cat", "a kitten", "a dog"])
    assert positives.tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    # two images with the very same caption are positives of each other too
    assert positives_matrix(["a.jpg", "b.jpg"], ["a dog", "a dog"]).tolist() == [[1, 1], [1, 1]]
    # a model that already matches the image with both its captions: with the positives
    # there is little left to learn; a diagonal-only target would call (cat.jpg,
    # "a kitten") a mismatch and push hard against the model's correct answer
    scale, bias = torch.tensor(10.0), torch.tensor(-5.0)
    text = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])

    def gradient(targets: torch.Tensor) -> float:
        image = text.clone().requires_grad_(True)
        siglip_loss(image, text, scale, bias, targets).backward()
        return float(image.grad.norm())

    assert gradient(positives) < 0.1 * gradient(torch.eye(3))


def test_hard_negatives_compete_for_images_but_are_not_searched_for_images():
    """NegCLIP's convention: image -> text is a softmax over the batch's captions plus the
    hard negatives; text -> image only over the batch's own captions."""
    torch.manual_seed(0)
    image = F.normalize(torch.randn(4, 8), dim=-1)
    text = F.normalize(torch.randn(6, 8), dim=-1)  # 4 captions, then 2 hard negatives
    captions = ["a", "b", "c", "d"]
    positives = with_negatives(positives_matrix([0, 1, 2, 3], captions), captions, ["x", "y"])
    assert positives.shape == (4, 6) and positives[:, 4:].sum() == 0
    logits = 5.0 * image @ text.T
    reference = (
        F.cross_entropy(logits, torch.arange(4)) + F.cross_entropy(logits[:, :4].T, torch.arange(4))
    ) / 2
    assert clip_loss(image, text, torch.tensor(5.0), positives).item() == pytest.approx(
        reference.item(), rel=1e-6
    )
    # a "negative" that is in fact another row's caption matches that row
    assert with_negatives(positives_matrix([0, 1], ["a", "b"]), ["a", "b"], ["b"]).tolist() == [
        [1, 0, 0],
        [0, 1, 1],
    ]


def test_fit_trains_against_the_negative_column(scratch_clip, shapes, tmp_path):
    runs = {}
    for name, column in (("plain", None), ("negatives", "negative")):
        matcher = _matcher(scratch_clip)
        matcher.fit(shapes, output_dir=tmp_path / name, epochs=2, negative_column=column, **FAST)
        runs[name] = matcher.extract_embedding(["a small red circle on the left"], progress=False)
    assert np.abs(runs["plain"] - runs["negatives"]).max() > 1e-4  # the negatives were trained on
    with pytest.raises(KeyError, match="hard_negative"):
        _matcher(scratch_clip).fit(
            shapes, output_dir=tmp_path / "x", negative_column="hard_negative"
        )
    with pytest.raises(ValueError, match="negative_column='negative' needs pairs as a table"):
        _matcher(scratch_clip).fit(([], []), output_dir=tmp_path / "y", negative_column="negative")


def test_lr_schedule_warms_up_then_decays():
    assert [lr_factor(s, 4, 20, "cosine") for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(4, 4, 20, "cosine") == 1.0
    assert lr_factor(12, 4, 20, "cosine") == pytest.approx(0.5)
    assert lr_factor(19, 4, 20, "linear") == pytest.approx(1 / 16)
    assert lr_factor(19, 4, 20, "constant") == 1.0


# -- training -----------------------------------------------------------------------------
def test_short_fit_lowers_the_loss_and_raises_training_recall(scratch_clip, shapes, tmp_path):
    matcher = _matcher(scratch_clip)
    result = matcher.fit(shapes, validation=shapes, output_dir=tmp_path, epochs=15, **FAST)
    before, after = result.history[0], result.history[-1]
    assert np.mean(result.losses[-4:]) < 0.85 * np.mean(result.losses[:4])
    assert after["mean_hit_rate"] > max(0.3, 3 * before["mean_hit_rate"])
    assert after["text_to_image/hit_rate@5"] > before["text_to_image/hit_rate@5"] + 0.2
    # the kept epoch is the best one, and the matcher now holds exactly those weights
    best = max(result.history, key=lambda row: row["mean_hit_rate"])
    assert result.best_epoch == best["epoch"]
    assert validate(matcher, read_pairs(shapes), [1, 5, 10]) == pytest.approx(result.best)


def test_fitted_model_is_saved_natively_and_loads_through_the_plugin(
    scratch_clip, shapes, tmp_path
):
    from transformers import CLIPModel

    matcher = _matcher(scratch_clip)
    result = matcher.fit(shapes, output_dir=tmp_path, epochs=2, validation_split=0.25, **FAST)
    folder = result.checkpoints["model"]
    assert folder == tmp_path / "checkpoint"
    assert {"config.json", "model.safetensors", "tokenizer_config.json"} <= {
        p.name for p in folder.iterdir()
    }
    CLIPModel.from_pretrained(folder)  # the format transformers itself reads
    texts = ["a small red circle on the left", "a blue square above a green triangle"]
    expected = matcher.extract_embedding(texts)
    assert np.abs(_matcher(folder).extract_embedding(texts) - expected).max() < 1e-6
    reloaded = Matcher.load(tmp_path)  # matcher.json points at the checkpoint
    assert reloaded.configs["image_encoder"]["checkpoint"] == str(folder)
    assert np.abs(reloaded.extract_embedding(texts) - expected).max() < 1e-6
    # the trained scale travels with the checkpoint
    assert reloaded.image_tower.logit_scale == pytest.approx(matcher.image_tower.logit_scale)
    # validation images never appear in training: 25% of the 64 images are held out
    assert result.history[0]["image_to_text/queries"] == 16


def test_freeze_and_last_blocks_train_only_what_was_asked(scratch_clip, shapes, tmp_path):
    matcher = _matcher(scratch_clip)
    model = matcher.tower_sources["image"].trainable.model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    matcher.fit(shapes, output_dir=tmp_path, epochs=1, freeze="text", trainable_blocks=1, **FAST)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed, "nothing trained"
    assert not any(n.startswith(("text_model", "text_projection")) for n in changed)
    assert not any(n.startswith("vision_model.embeddings") for n in changed)
    assert not any("encoder.layers.0." in n for n in changed)
    assert any("vision_model.encoder.layers.1." in n for n in changed)
    assert any(n.startswith("visual_projection") for n in changed)
    assert "logit_scale" in changed


def test_towers_of_two_checkpoints_are_saved_side_by_side(scratch_clip, shapes, tmp_path):
    from mmsim_openai_clip.scratch import save_new_clip, word_tokenizer

    other = tmp_path / "other"
    save_new_clip(other, word_tokenizer(other, synthetic.VOCABULARY, 16), SCRATCH, seed=5)
    matcher = Matcher(
        "openai_clip",
        checkpoint=str(scratch_clip),
        text_encoder={"name": "openai_clip", "checkpoint": str(other)},
        progress=False,
    )
    result = matcher.fit(shapes, output_dir=tmp_path / "out", epochs=1, freeze="text", **FAST)
    assert result.checkpoints == {
        "image": tmp_path / "out" / "image_checkpoint",
        "text": tmp_path / "out" / "text_checkpoint",
    }
    reloaded = Matcher.load(tmp_path / "out")
    items = ["a red circle", str(read_pairs(shapes).images[0])]
    assert np.abs(reloaded.extract_embedding(items) - matcher.extract_embedding(items)).max() < 1e-6


def test_siglip_loss_trains_siglip_scale_and_bias(tiny_siglip_dir, tmp_path):
    from mmsim_siglip.testing import TINY

    size = TINY["vision_config"]["image_size"]
    data = synthetic.write_dataset(tmp_path / "data", 16, seed=1, size=size)
    matcher = _matcher(tiny_siglip_dir, "siglip")
    bias = matcher.text_tower.logit_bias
    with pytest.warns(TruncationWarning, match="trained truncated"):  # SigLIP pads to 16
        result = matcher.fit(data, output_dir=tmp_path / "out", epochs=2, loss="siglip", **FAST)
    assert matcher.text_tower.logit_bias != bias  # the learnable bias moved
    reloaded = Matcher.load(tmp_path / "out")
    assert reloaded.text_tower.logit_bias == pytest.approx(matcher.text_tower.logit_bias)
    texts = ["a red circle", "a blue square"]
    diff = reloaded.extract_embedding(texts) - matcher.extract_embedding(texts)
    assert np.abs(diff).max() < 1e-6
    assert result.checkpoints["model"].joinpath("config.json").is_file()


def test_open_clip_fit_saves_a_local_dir_checkpoint(open_clip_dirs, tmp_path):
    data = synthetic.write_dataset(tmp_path / "data", 16, seed=2, size=32)
    matcher = Matcher("open_clip", checkpoint=str(open_clip_dirs["clip_dir"]), progress=False)
    result = matcher.fit(data, output_dir=tmp_path / "out", epochs=1, trainable_blocks=1, **FAST)
    folder = result.checkpoints["model"]
    assert (folder / "open_clip_config.json").is_file()
    reloaded = Matcher("open_clip", checkpoint=f"local-dir:{folder}", progress=False)
    images = [str(p) for p in sorted((tmp_path / "data").glob("*.png"))[:4]]
    diff = reloaded.extract_embedding(images) - matcher.extract_embedding(images)
    assert np.abs(diff).max() < 1e-5


# -- logs and errors ----------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_metrics_log_has_a_row_per_step_and_per_epoch(scratch_clip, shapes, tmp_path, fmt):
    matcher = _matcher(scratch_clip)
    matcher.fit(shapes, validation=shapes, output_dir=tmp_path, epochs=2, log_format=fmt, **FAST)
    if fmt == "jsonl":
        rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").open()]
        steps = [r for r in rows if r["kind"] == "step"]
        epochs = [r for r in rows if r["kind"] == "epoch"]
    else:
        steps = list(csv.DictReader((tmp_path / "steps.csv").open()))
        epochs = list(csv.DictReader((tmp_path / "epochs.csv").open()))
    assert [int(r["step"]) for r in steps] == [1, 2, 3, 4]
    assert {"loss", "lr", "logit_scale", "epoch"} <= set(steps[0])
    assert [int(r["epoch"]) for r in epochs] == [0, 1, 2]
    assert "text_to_image/hit_rate@1" in epochs[0]


def test_a_bad_image_is_named_or_skipped(scratch_clip, shapes, tmp_path):
    pairs = read_pairs(shapes)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    images = list(pairs.images)
    images[5] = str(broken)
    data = {"image": images, "caption": pairs.captions}
    with pytest.raises(ItemError, match=r"item 5 .*broken\.png"):
        _matcher(scratch_clip).fit(data, output_dir=tmp_path / "a", epochs=1, **FAST)
    skipping = Matcher("openai_clip", checkpoint=str(scratch_clip), progress=False, on_error="skip")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = skipping.fit(data, output_dir=tmp_path / "b", epochs=1, **FAST)
    assert result.skipped == [5]
    assert any("1 pairs were skipped" in str(w.message) for w in caught)
    assert len(result.losses) == 2  # the other 63 pairs trained


def test_bad_options_are_refused_clearly(scratch_clip, shapes, tmp_path):
    matcher = _matcher(scratch_clip)
    with pytest.raises(ConfigError, match="loss must be one of"):
        matcher.fit(shapes, output_dir=tmp_path, loss="triplet")
    with pytest.raises(ConfigError, match=r"invalid fit options.*epoch"):
        matcher.fit(shapes, output_dir=tmp_path, epoch=3)
    with pytest.raises(ConfigError, match="trainable_blocks=5 but the image tower has 2"):
        matcher.fit(shapes, output_dir=tmp_path, trainable_blocks=5)
    with pytest.raises(ConfigError, match="monitor='recall' is not a validation metric"):
        matcher.fit(shapes, validation=shapes, output_dir=tmp_path, monitor="recall")
    with pytest.raises(ConfigError, match="not both"):
        matcher.fit(shapes, validation=shapes, validation_split=0.2, output_dir=tmp_path)
    with pytest.raises(ConfigError, match="dtype='float32'"):
        Matcher("openai_clip", checkpoint=str(scratch_clip), dtype="bfloat16").fit(
            shapes, output_dir=tmp_path
        )


def test_toy_encoder_without_trainable_says_it_cannot_be_fine_tuned(toy_plugin, shapes, tmp_path):
    with pytest.raises(ConfigError, match=r"encoder .toy.*cannot be fine-tuned"):
        Matcher("toy", progress=False).fit(shapes, output_dir=tmp_path)


# -- pair sources -------------------------------------------------------------------------
def test_pairs_from_every_source(tmp_path):
    folder = tmp_path / "captioned"
    folder.mkdir()
    for name, colour in (("cat", "red"), ("dog", "blue")):
        Image.new("RGB", (8, 8), colour).save(folder / f"{name}.png")
        (folder / f"{name}.txt").write_text(f"a {name}\n\na {colour} {name}\n")
    from_folder = read_pairs(folder)
    assert from_folder.captions == ["a cat", "a red cat", "a dog", "a blue dog"]
    keys = from_folder.image_keys
    assert keys[0] == keys[1] != keys[2] == keys[3]  # one image, two captions

    (folder / "captions.csv").write_text("image,caption\ncat.png,a kitten\n")
    table = read_pairs(folder)  # a captions table wins over sidecar files
    assert table.images == [str(folder / "cat.png")] and table.captions == ["a kitten"]

    image = Image.new("RGB", (8, 8))
    assert read_pairs(([image, image], ["x", "y"])).image_keys[0] == id(image)
    assert read_pairs([("a.png", "x"), ("b.png", "y")]).captions == ["x", "y"]
    assert read_pairs((("a.png", "x"), ("b.png", "y"))).images == ["a.png", "b.png"]
    assert read_pairs({"img": ["a.png"], "text": ["x"]}, "img", "text").images == ["a.png"]
    with pytest.raises(ValueError, match="2 images but 1 captions"):
        read_pairs((["a.png", "b.png"], ["x"]))
    with pytest.raises(ValueError, match="pair 1: caption must be a non-empty string"):
        read_pairs((["a.png", "b.png"], ["x", " "]))
    with pytest.raises(ValueError, match="pair 0: caption must be a non-empty string, got None"):
        read_pairs({"image": ["a.png"], "caption": [None]})
    with pytest.raises(KeyError, match="text_column='text' is not a column"):
        read_pairs(folder / "captions.csv", "image", "text")
