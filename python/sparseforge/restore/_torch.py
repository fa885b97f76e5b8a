"""Lazy, optional torch: the learned restorers need it, the rest of sparseforge does not."""

from __future__ import annotations

from types import ModuleType

#: What to run when torch is missing. A plain ``pip install torch`` pulls a multi-GB CUDA
#: build on Linux; on CPU-only machines the CPU wheel index is the sensible default.
INSTALL_HINT = ("install PyTorch first: `pip install torch==2.13.0 --index-url "
                "https://download.pytorch.org/whl/cpu` (CPU build; drop --index-url for a CUDA "
                "build), or `pip install \"sparseforge[torch]\"`")


def require_torch(feature: str = "the learned restorers") -> ModuleType:
    """Import torch, or raise an ImportError saying how to install it.

    Parameters
    ----------
    feature : str
        What needs torch, for the message.

    Returns
    -------
    torch : module
    """
    try:
        import torch
    except ImportError as exc:
        raise ImportError(f"{feature} need PyTorch, which is not installed; "
                          f"{INSTALL_HINT}") from exc
    return torch


def torch_available() -> bool:
    """True when torch can be imported (without importing it if it is not installed)."""
    from importlib.util import find_spec

    try:
        return find_spec("torch") is not None
    except (ImportError, ValueError):  # a broken or deliberately blocked installation
        return False
