"""LIHQ: talking-head video rendering as a chain of model services passing object-store keys.

The shared core lives here: configuration (`lihq.config`), typed errors (`lihq.errors`), object
storage (`lihq.storage`), media IO (`lihq.media`), frame packs (`lihq.framepack`), the weights
registry (`lihq.weights`), gRPC helpers (`lihq.grpc`) and the CLI (`lihq_cli`).
"""

__version__ = "0.1.0"
