"""Loading `modnet_photographic_portrait_matting.ckpt` into our MODNet, strictly.

The official file is `nn.DataParallel(MODNet).state_dict()`: every key starts with `module.`, and every
backbone tensor is listed twice, under `module.backbone.*` and `module.lr_branch.backbone.*` (one
tensor object, since LRBranch holds the same backbone module). Our MODNet has the same two names for
its one backbone, so the file's key set is loaded as it is: `checkpoint_filter` is the only place that
touches the layout (it removes `module.` and checks that both aliases of every backbone tensor hold
the same values, as a file saved from the network always does).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from lihq.weights.load import load_weights
from lihq.weights.loaders import WrongCheckpoint, remove_prefix
from services.modnet.nets import MODNet

StateDict = dict[str, torch.Tensor]
DATAPARALLEL_PREFIX = "module."
BACKBONE = "backbone."
BACKBONE_ALIAS = "lr_branch.backbone."


def checkpoint_filter(sd: Mapping[str, torch.Tensor], source: str = "checkpoint") -> StateDict:
    """Official layout -> our module's keys: strip `module.`; check the two backbone aliases agree.

    Both alias groups stay in the result (our module lists them too, so loading stays strict). A file
    whose aliases differ was not saved from one MODNet; it is refused with WrongCheckpoint rather than
    silently picking one copy.
    """
    out = remove_prefix(sd, DATAPARALLEL_PREFIX)
    differing = []
    for key, value in out.items():
        if not key.startswith(BACKBONE_ALIAS):
            continue
        twin = out.get(BACKBONE + key[len(BACKBONE_ALIAS) :])
        if twin is not None and (twin.shape != value.shape or not torch.equal(twin, value)):
            differing.append(key)
    if differing:
        raise WrongCheckpoint(
            f"{source}: {len(differing)} tensors differ between backbone.* and lr_branch.backbone.* "
            f"(e.g. {differing[0]}); a MODNet checkpoint stores one backbone under both names"
        )
    return out


def build_modnet(sd: Mapping[str, torch.Tensor], source: str = "checkpoint") -> MODNet:
    """A MODNet in eval mode on CPU holding `sd` (official layout or already filtered), loaded strictly.

    Missing / unexpected keys and shape mismatches raise WrongCheckpoint listing them.
    """
    return load_weights(MODNet(), sd, filter_fn=lambda s: checkpoint_filter(s, source), what=source).eval()


def load_modnet(path: str | Path) -> MODNet:
    """Read the checkpoint at `path` weights-only and build the net (`lihq.weights.load.load_weights`).

    Errors: absent file -> WeightsMissing; unreadable -> CorruptCheckpoint; wrong model -> WrongCheckpoint.
    """
    return load_weights(MODNet(), path, filter_fn=lambda s: checkpoint_filter(s, str(path))).eval()
