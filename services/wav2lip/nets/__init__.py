"""Pure torch modules: the Wav2Lip generator and the S3FD face detector (official checkpoint keys)."""

from services.wav2lip.nets.s3fd import S3FD
from services.wav2lip.nets.wav2lip import Wav2Lip

__all__ = ["S3FD", "Wav2Lip"]
