"""Lip-sync stage (LipSyncService, app `wav2lip`): Wav2Lip mouth generation + the S3FD face track."""
