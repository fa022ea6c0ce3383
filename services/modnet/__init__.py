"""MODNet portrait matting and background compositing (the `modnet` stage, MattingService)."""
