"""Translations of third-party file formats into ssni's state dicts: diffusers UNet folders and NVlabs/edm pickles."""
