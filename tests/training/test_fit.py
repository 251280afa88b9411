"""Fine-tuning: losses, freezing, the best checkpoint, the new spec, logs, inputs.

The training loop runs on the toy encoder (fine-tunable, tiny, no backbone needed);
each backbone plugin tests its own native checkpoints in its distribution."""

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
from mmsim.errors import ConfigError, ItemError
from mmsim.inputs.identity import item_key
from mmsim.inputs.pairs import read_pairs
from mmsim.training.losses import clip_loss, positives_matrix, siglip_loss, with_negatives
from mmsim.training.parameters import lr_factor
from mmsim.training.trainer import validate

FAST = {"batch_size": 32, "lr": 1e-3, "warmup_steps": 5, "weight_decay": 0.0}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return synthetic.write_dataset(
        tmp_path_factory.mktemp("shapes"), 64, seed=0, size=32, renderer="canonical"
    )


def _matcher(**options) -> Matcher:
    return Matcher("toy", progress=False, **options)


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


def test_fit_trains_against_the_negative_column(shapes, tmp_path):
    runs = {}
    for name, column in (("plain", None), ("negatives", "negative")):
        matcher = _matcher()
        matcher.fit(shapes, output_dir=tmp_path / name, epochs=2, negative_column=column, **FAST)
        runs[name] = matcher.extract_embedding(["a small red circle on the left"], progress=False)
    assert np.abs(runs["plain"] - runs["negatives"]).max() > 1e-4  # the negatives were trained on
    with pytest.raises(KeyError, match="hard_negative"):
        _matcher().fit(shapes, output_dir=tmp_path / "x", negative_column="hard_negative")
    with pytest.raises(ValueError, match="negative_column='negative' needs pairs as a table"):
        _matcher().fit(([], []), output_dir=tmp_path / "y", negative_column="negative")


def test_lr_schedule_warms_up_then_decays():
    assert [lr_factor(s, 4, 20, "cosine") for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(4, 4, 20, "cosine") == 1.0
    assert lr_factor(12, 4, 20, "cosine") == pytest.approx(0.5)
    assert lr_factor(19, 4, 20, "linear") == pytest.approx(1 / 16)
    assert lr_factor(19, 4, 20, "constant") == 1.0


# -- training -----------------------------------------------------------------------------
def test_short_fit_lowers_the_loss_and_raises_training_recall(shapes, tmp_path):
    matcher = _matcher()
    result = matcher.fit(shapes, validation=shapes, output_dir=tmp_path, epochs=15, **FAST)
    before, after = result.history[0], result.history[-1]
    assert np.mean(result.losses[-4:]) < 0.85 * np.mean(result.losses[:4])
    assert after["mean_hit_rate"] > max(0.3, 3 * before["mean_hit_rate"])
    assert after["text_to_image/hit_rate@5"] > before["text_to_image/hit_rate@5"] + 0.2
    # the kept epoch is the best one, and the matcher now holds exactly those weights
    best = max(result.history, key=lambda row: row["mean_hit_rate"])
    assert result.best_epoch == best["epoch"]
    assert validate(matcher.assembly, read_pairs(shapes), [1, 5, 10]) == pytest.approx(result.best)


def test_a_fit_gives_a_new_spec_saved_beside_its_checkpoint(shapes, tmp_path):
    matcher = _matcher(threshold="best_f1", query="image", response="caption")
    matcher.calibrate(
        {
            "image": read_pairs(shapes).images[:8],
            "caption": ["a red circle"] * 8,
            "label": [1, 0] * 4,
        }
    )
    before = matcher.spec
    result = matcher.fit(shapes, output_dir=tmp_path, epochs=2, validation_split=0.25, **FAST)
    folder = result.checkpoints["model"]
    assert folder == tmp_path / "checkpoint" and (folder / "toy.json").is_file()
    assert before.image_encoder.options["checkpoint"] == "random"  # the old spec is unchanged
    assert matcher.spec is result.spec
    assert result.spec.image_encoder.options["checkpoint"] == str(folder)
    assert result.spec.text_encoder == result.spec.image_encoder
    assert result.spec.threshold_state == {} and before.threshold_state != {}
    texts = ["a small red circle on the left", "a blue square above a green triangle"]
    expected = matcher.extract_embedding(texts)
    reloaded = Matcher.load(tmp_path)  # matcher.json points at the checkpoint
    assert reloaded.spec.image_encoder.options["checkpoint"] == str(folder)
    assert np.abs(reloaded.extract_embedding(texts) - expected).max() < 1e-6
    # the trained scale travels with the checkpoint
    assert reloaded.image_tower.logit_scale == pytest.approx(matcher.image_tower.logit_scale)
    assert reloaded.image_tower.logit_scale != pytest.approx(1 / 0.07)
    # validation images never appear in training: 25% of the 64 images are held out
    assert result.history[0]["image_to_text/queries"] == 16


def test_save_epochs_keeps_every_epochs_weights_beside_the_best(shapes, tmp_path):
    """Each epoch's folder loads as that epoch's model: the kept epoch's gives the kept
    checkpoint's embeddings, another epoch's differs."""
    matcher = _matcher()
    result = matcher.fit(
        shapes, validation=shapes, output_dir=tmp_path, epochs=3, save_epochs=True, **FAST
    )
    assert sorted(result.epochs) == [1, 2, 3]
    assert result.epochs[2] == {"model": tmp_path / "epoch-2" / "checkpoint"}
    texts = ["a small red circle on the left", "a blue square above a green triangle"]
    kept = matcher.extract_embedding(texts)

    def embeddings(epoch: int) -> np.ndarray:
        folder = str(result.epochs[epoch]["model"])
        reloaded = Matcher("toy", encoder_options={"checkpoint": folder}, progress=False)
        return reloaded.extract_embedding(texts)

    assert result.best_epoch in (1, 2, 3)
    assert np.abs(embeddings(result.best_epoch) - kept).max() < 1e-6
    other = 1 if result.best_epoch != 1 else 2
    assert np.abs(embeddings(other) - kept).max() > 1e-4
    without = _matcher().fit(shapes, output_dir=tmp_path / "plain", epochs=1, **FAST)
    assert without.epochs == {} and not list((tmp_path / "plain").glob("epoch-*"))


def test_freeze_trains_only_the_other_tower(shapes, tmp_path):
    matcher = _matcher()
    model = matcher.assembly.sources["image"].trainable.model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    matcher.fit(shapes, output_dir=tmp_path, epochs=1, freeze="text", **FAST)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {"image_projection.weight", "image_projection.bias", "logit_scale"}


def test_patience_stops_once_the_monitored_metric_stops_improving(shapes, tmp_path):
    rows = []
    # a learning rate too small to move any metric: no epoch improves on epoch 0
    result = _matcher().fit(
        shapes,
        validation=shapes,
        output_dir=tmp_path,
        epochs=6,
        patience=2,
        on_epoch=lambda row, best: rows.append((row["epoch"], best)),
        **{**FAST, "lr": 1e-12},
    )
    assert rows == [(1, False), (2, False)]
    assert [row["epoch"] for row in result.history] == [0, 1, 2]
    assert len(result.losses) == 4  # two epochs of two steps, not six
    assert result.best_epoch == 0


# -- logs and errors ----------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_metrics_log_has_a_row_per_step_and_per_epoch(shapes, tmp_path, fmt):
    matcher = _matcher()
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


def test_a_bad_image_is_named_or_skipped(shapes, tmp_path):
    pairs = read_pairs(shapes)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    images = list(pairs.images)
    images[5] = str(broken)
    data = {"image": images, "caption": pairs.captions}
    with pytest.raises(ItemError, match=r"item 5 .*broken\.png"):
        _matcher().fit(data, output_dir=tmp_path / "a", epochs=1, **FAST)
    skipping = _matcher(on_error="skip")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = skipping.fit(data, output_dir=tmp_path / "b", epochs=1, **FAST)
    assert result.skipped == [5]
    assert any("1 pairs were skipped" in str(w.message) for w in caught)
    assert len(result.losses) == 2  # the other 63 pairs trained


def test_bad_options_are_refused_clearly(shapes, tmp_path):
    matcher = _matcher()
    with pytest.raises(ConfigError, match="loss must be one of"):
        matcher.fit(shapes, output_dir=tmp_path, loss="triplet")
    with pytest.raises(ConfigError, match=r"invalid fit options.*epoch"):
        matcher.fit(shapes, output_dir=tmp_path, epoch=3)
    with pytest.raises(ConfigError, match=r"trainable_blocks=5 but the image tower has 0 .*whole"):
        matcher.fit(shapes, output_dir=tmp_path, trainable_blocks=5)
    with pytest.raises(ConfigError, match="monitor='recall' is not a validation metric"):
        matcher.fit(shapes, validation=shapes, output_dir=tmp_path, monitor="recall")
    with pytest.raises(ConfigError, match="patience must be null or >= 1 epochs, got 0"):
        matcher.fit(shapes, validation=shapes, output_dir=tmp_path, patience=0)
    with pytest.raises(ConfigError, match=r"patience=2 .*no validation"):
        matcher.fit(shapes, output_dir=tmp_path, patience=2)
    with pytest.raises(ConfigError, match="not both"):
        matcher.fit(shapes, validation=shapes, validation_split=0.2, output_dir=tmp_path)
    with pytest.raises(ConfigError, match="dtype='float32'"):
        _matcher(dtype="bfloat16").fit(shapes, output_dir=tmp_path)


def test_an_encoder_without_trainable_says_it_cannot_be_fine_tuned(
    outside_plugin, shapes, tmp_path
):
    with pytest.raises(ConfigError, match=r"encoder .outside.*cannot be fine-tuned"):
        Matcher("outside", progress=False).fit(shapes, output_dir=tmp_path)


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
    assert read_pairs(([image, image], ["x", "y"])).image_keys == [item_key(image)] * 2
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
