"""The optional diffusers dependency, imported once, with the install hint when it is missing."""

from __future__ import annotations

try:
    import diffusers
    from diffusers.utils.torch_utils import randn_tensor
except ImportError as error:  # pragma: no cover - exercised through a test that hides diffusers
    raise ImportError(
        f"ssni.diffusers needs the optional dependency diffusers: pip install diffusers (import failed: {error})"
    ) from error

__all__ = ["diffusers", "randn_tensor"]
