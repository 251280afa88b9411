"""Contrastive losses for fine-tuning two towers on image-text pairs.

Both take a ``positives`` matrix instead of assuming the diagonal: in a batch holding
the same image twice (with two captions), or the same caption for two images, those
off-diagonal pairs are matches too, and pushing them apart would teach the model to
contradict its own data.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

LossName = Literal["clip", "siglip"]
LOSSES: tuple[LossName, ...] = ("clip", "siglip")


def clip_loss(
    image: torch.Tensor, text: torch.Tensor, scale: torch.Tensor, positives: torch.Tensor
) -> torch.Tensor:
    """CLIP's symmetric InfoNCE over normalised embeddings, with a learnable scale.

    Each row's target spreads evenly over its positives, which reduces to CLIP's usual
    cross-entropy with the diagonal as target when every pair in the batch is distinct.
    ``text`` may hold more rows than ``image``: the rows after the batch's own captions
    are hard negatives, competing for each image (image -> text) but not searched for
    images themselves (they describe none), as in NegCLIP.
    """
    n = image.shape[0]
    logits = scale * image @ text.T
    target = positives / positives.sum(dim=1, keepdim=True)
    own = positives[:, :n].T
    target_t = own / own.sum(dim=1, keepdim=True)
    image_to_text = -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    text_to_image = -(target_t * F.log_softmax(logits[:, :n].T, dim=1)).sum(dim=1).mean()
    return (image_to_text + text_to_image) / 2


def siglip_loss(
    image: torch.Tensor,
    text: torch.Tensor,
    scale: torch.Tensor,
    bias: torch.Tensor,
    positives: torch.Tensor,
) -> torch.Tensor:
    """SigLIP's pairwise sigmoid loss: every (image, text) cell is a binary decision,
    +1 for positives and -1 otherwise, summed per image and averaged over images
    (hard-negative texts after the batch's captions are simply more cells)."""
    logits = scale * image @ text.T + bias
    signs = 2.0 * positives - 1.0
    return -F.logsigmoid(signs * logits).sum() / image.shape[0]


def positives_matrix(image_keys: list[object], captions: list[str]) -> torch.Tensor:
    """1 where two batch rows share their image or their caption (the diagonal included)."""
    same_image = _same(image_keys)
    same_caption = _same(captions)
    return (same_image | same_caption).float()


def with_negatives(
    positives: torch.Tensor, captions: list[str], negatives: list[str]
) -> torch.Tensor:
    """``positives`` widened by one column per hard-negative text: 0, except where a
    negative happens to be the very caption of a batch row (then it matches that row)."""
    extra = torch.tensor([[caption == text for text in negatives] for caption in captions])
    return torch.cat([positives, extra.reshape(len(captions), len(negatives)).float()], dim=1)


def _same(keys: list[object]) -> torch.Tensor:
    ids: dict[object, int] = {}
    codes = torch.tensor([ids.setdefault(k, len(ids)) for k in keys])
    return codes[:, None] == codes[None, :]
