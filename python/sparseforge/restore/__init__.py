"""Image restoration on sparse codes. Images are float arrays on the 0-255 scale."""

from .classical import denoise_ksvd, inpaint_ksvd

__all__ = ["denoise_ksvd", "inpaint_ksvd"]
