"""Searching a space: the settings (`config`), the loop over epochs (`loop`), one run (`run`)."""
