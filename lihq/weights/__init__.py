"""The weights registry: every checkpoint LIHQ needs (official URLs, sha256, license, destination),
downloading (`fetch`), checking (`verify`), deterministic synthetic checkpoints in the official file
layouts (`synthesize`), and `load_weights`, the one strict loader every model service uses.

`lihq.weights.fetch.fetch` downloads; it is not re-exported here, where it would shadow its module.
"""

from lihq.weights.fetch import list_entries, verify
from lihq.weights.load import load_weights
from lihq.weights.loaders import (
    check_against_manifest,
    load_fomm_checkpoint,
    load_state_dict,
    load_wav2lip_checkpoint,
)
from lihq.weights.registry import (
    ENTRIES,
    WeightFile,
    WeightsEntry,
    entry_names,
    get_entry,
    local_path,
    require,
)
from lihq.weights.synth import is_synthetic, synthesize, weights_id

__all__ = [
    "ENTRIES",
    "WeightFile",
    "WeightsEntry",
    "check_against_manifest",
    "entry_names",
    "get_entry",
    "is_synthetic",
    "list_entries",
    "load_fomm_checkpoint",
    "load_state_dict",
    "load_weights",
    "load_wav2lip_checkpoint",
    "local_path",
    "require",
    "synthesize",
    "verify",
    "weights_id",
]
