"""Training a fixed architecture from scratch: the settings (`config`) and the run (`run`)."""
