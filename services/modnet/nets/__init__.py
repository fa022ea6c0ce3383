"""MODNet networks: pure torch modules (no I/O); attribute names are the official checkpoint keys."""

from services.modnet.nets.mobilenetv2 import MobileNetV2Backbone
from services.modnet.nets.modnet import MODNet

__all__ = ["MODNet", "MobileNetV2Backbone"]
