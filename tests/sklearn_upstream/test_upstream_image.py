"""scikit-learn's tests of patch extraction (``sklearn/feature_extraction/tests/
test_image.py``), run against sparseforge's extract_patches_2d and
reconstruct_from_patches_2d.

sparseforge's functions also replace scikit-learn's in ``sklearn.feature_extraction.image``,
so scikit-learn's PatchExtractor -- which hands every image to extract_patches_2d as
(H, W, 1) -- runs on sparseforge.
"""

from __future__ import annotations

import pytest

import sparseforge as sf

upstream = pytest.importorskip("sklearn.feature_extraction.tests.test_image")
from sklearn.feature_extraction import image as _image  # noqa: E402

# The patch tests (graph construction and the private _extract_patches are not sparseforge's)
# and the fixtures they use.
SELECTED = [
    "test_extract_patches_all", "test_extract_patches_all_color",
    "test_extract_patches_all_rect", "test_extract_patches_max_patches",
    "test_extract_patch_same_size_image", "test_extract_patches_less_than_max_patches",
    "test_reconstruct_patches_perfect", "test_reconstruct_patches_perfect_color",
    "test_reconstruct_patches_edge_patch_size", "test_patch_extractor_fit",
    "test_patch_extractor_max_patches", "test_patch_extractor_max_patches_default",
    "test_patch_extractor_all_patches", "test_patch_extractor_color",
    "test_patch_extractor_wrong_input", "test_width_patch",
    "downsampled_face", "orange_face", "downsampled_face_collection",
]
globals().update({name: getattr(upstream, name) for name in SELECTED})

XFAIL = {
    # An integer image: sparseforge refuses its dtype (TypeError) before the patch size.
    "test_width_patch": "no_mixed_dtypes",
}


@pytest.fixture(autouse=True)
def _sparseforge(monkeypatch):
    for module in (upstream, _image):
        monkeypatch.setattr(module, "extract_patches_2d", sf.extract_patches_2d)
        monkeypatch.setattr(module, "reconstruct_from_patches_2d",
                            sf.reconstruct_from_patches_2d)
