"""CUDA array plumbing without a GPU: objects exposing ``__cuda_array_interface__`` (fakes
here) are described without copying (`_arrays.describe`), calls are placed on one backend
(`_arrays.placement`), and every error raised before a kernel runs names the arguments (mixed
host/device, mixed devices or frameworks, dtypes, layouts, a CPU-only build)."""

from __future__ import annotations

import types

import numpy as np
import pytest

import sparseforge as sf
from sparseforge import _arrays, _backend, _validation


class FakeCudaArray:
    """Just enough of a CUDA array for the plumbing: the CAI dict and a device id."""

    def __init__(self, shape, typestr="<f4", *, strides=None, device=0, stream=None,
                 ptr=1 << 20, readonly=False):
        self.__cuda_array_interface__ = {"shape": tuple(shape), "typestr": typestr,
                                         "data": (ptr, readonly), "strides": strides,
                                         "version": 3, "stream": stream}
        self.device = types.SimpleNamespace(id=device)


class FakeCupyArray(FakeCudaArray):
    pass


FakeCupyArray.__module__ = "cupy._core.core"  # what _arrays keys the framework on


@pytest.fixture
def one_gpu(monkeypatch):
    """A CUDA build that sees one device (errors are raised before any kernel runs)."""
    fake = types.SimpleNamespace(device_count=lambda: 1, pointer_device=lambda ptr: 0,
                                 build_info=lambda: {"device_count": 1})
    monkeypatch.setattr(_backend, "_cuda", fake)
    monkeypatch.setattr(_backend, "HAS_CUDA", True)
    return fake


def test_describe_reads_the_interface_without_copying():
    x = FakeCudaArray((5, 3), "<f8", strides=(48, 8), device=1, stream=7, ptr=4096,
                      readonly=True)
    a = _arrays.describe(x, "X")
    assert (a.framework, a.ptr, a.shape, a.strides) == ("cai", 4096, (5, 3), (6, 1))
    assert a.dtype == np.float64 and a.device == "cuda" and a.device_index == 1
    assert a.stream == 7 and a.readonly and a.name == "X" and a.ndim == 2
    assert a.obj is x and a.rows_contiguous() and not a.c_contiguous()
    c = _arrays.describe(FakeCudaArray((4, 2, 3)), "c")      # strides None: C order
    assert c.strides == (6, 3, 1) and c.c_contiguous() and c.stream is None
    assert c.aligned
    # Host arrays are described the same way, without a copy.
    h = np.zeros((4, 6))[:, ::2]
    d = _arrays.describe(h, "h")
    assert (d.framework, d.device, d.shape, d.strides) == ("numpy", "cpu", (4, 3), (6, 2))
    assert d.obj is h and d.ptr == h.ctypes.data and not d.rows_contiguous()
    odd = _arrays.describe(FakeCudaArray((3,), "<f8", ptr=4096 + 4), "odd")
    assert not odd.aligned                                    # not a multiple of 8 bytes
    assert _arrays.describe(FakeCupyArray((2,)), "y").framework == "cupy"
    with pytest.raises(ValueError, match="`X` has strides .* not a multiple"):
        _arrays.describe(FakeCudaArray((4, 4), strides=(16, 2)), "X")


def test_is_cuda_array():
    torch = pytest.importorskip("torch")
    assert _arrays.is_cuda_array(FakeCudaArray((2,)))
    for host in (None, np.zeros(3), [1.0], torch.zeros(3)):
        assert not _arrays.is_cuda_array(host)
    assert not _arrays.any_cuda(np.zeros(2), None, torch.zeros(2))
    assert _arrays.any_cuda(np.zeros(2), FakeCudaArray((2,)))


def test_placement(one_gpu):
    cpu = _arrays.placement({"X": np.zeros((3, 2)), "dictionary": [[1.0, 2.0]], "k": None,
                             "dict_init": "dct"})
    assert cpu.kind == "cpu" and cpu.ctx is None and set(cpu.infos) == {"X", "dictionary"}
    assert cpu.infos["dictionary"].framework == "numpy"
    gpu = _arrays.placement({"X": FakeCupyArray((3, 2), stream=5), "mask": None})
    assert gpu.kind == "cuda" and set(gpu.infos) == {"X"}
    assert (gpu.ctx.framework, gpu.ctx.device, gpu.ctx.stream) == ("cupy", 0, 5)


def test_mixed_host_and_device_names_both(one_gpu):
    X, D = FakeCudaArray((10, 8)), np.zeros((20, 8), np.float32)
    with pytest.raises(ValueError, match=r"`X` is a CUDA array but `dictionary` is a numpy"):
        sf.sparse_encode(X, D, n_nonzero_coefs=2)
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match=r"`patches` is a CUDA array but `weights` is a torch "
                                         r"tensor on cpu"):
        sf.reconstruct_from_patches_2d(FakeCudaArray((4, 2, 2)), (3, 3),
                                       weights=torch.ones(4))


def test_mixed_devices_and_frameworks(one_gpu):
    X, D = FakeCudaArray((10, 8), device=0), FakeCudaArray((20, 8), device=1)
    with pytest.raises(ValueError, match=r"different devices \(`X` on cuda:0, `dictionary` "
                                         r"on cuda:1\)"):
        sf.sparse_encode(X, D)
    with pytest.raises(TypeError, match=r"mixed array frameworks \(`Gram` \(cai\), `Xy` "
                                        r"\(cupy\)\)"):
        sf.orthogonal_mp_gram(FakeCudaArray((6, 6)), FakeCupyArray((6, 2)))


def test_cpu_only_build_says_how_to_build_with_cuda(monkeypatch):
    monkeypatch.setattr(_backend, "HAS_CUDA", False)
    monkeypatch.setattr(_backend, "_cuda", None)
    monkeypatch.setattr(_backend, "_CUDA_IMPORT_ERROR", "built without CUDA")
    calls = [lambda x: sf.sparse_encode(x, x), lambda x: sf.orthogonal_mp_gram(x, x),
             lambda x: sf.extract_patches_2d(x, (2, 2)),
             lambda x: sf.reconstruct_from_patches_2d(x, (4, 4)),
             lambda x: sf.ksvd(x, 4)]
    for call in calls:
        with pytest.raises(RuntimeError, match=r"no CUDA module \(built without CUDA\); "
                                               r".*`SPARSEFORGE_CUDA=ON pip install \.`"):
            call(FakeCudaArray((6, 6)))


def test_no_visible_device(monkeypatch):
    fake = types.SimpleNamespace(device_count=lambda: 0, pointer_device=lambda ptr: -1)
    monkeypatch.setattr(_backend, "_cuda", fake)
    monkeypatch.setattr(_backend, "HAS_CUDA", True)
    with pytest.raises(RuntimeError, match="`X` is a CUDA array but the CUDA runtime sees no "
                                           "device"):
        sf.sparse_encode(FakeCudaArray((3, 4)), FakeCudaArray((5, 4)))


def test_dtype_rank_and_layout_errors_name_the_argument(one_gpu):
    D = FakeCudaArray((20, 8))
    with pytest.raises(TypeError, match="`X` has dtype int64; expected float32 or float64"):
        sf.sparse_encode(FakeCudaArray((10, 8), "<i8"), D)
    with pytest.raises(TypeError, match="`dictionary` has dtype float64 but the other "
                                        "arguments are float32"):
        sf.sparse_encode(FakeCudaArray((10, 8)), FakeCudaArray((20, 8), "<f8"))
    with pytest.raises(ValueError, match="`X` must have 2 dimensions"):
        sf.sparse_encode(FakeCudaArray((10,)), D)
    with pytest.raises(ValueError, match="`dictionary` has 7 features but `X` has 8"):
        sf.sparse_encode(FakeCudaArray((10, 8)), FakeCudaArray((20, 7)))
    with pytest.raises(ValueError, match=r"`n_nonzero_coefs` must be in \[1, "
                                         r"n_components=20\]"):
        sf.sparse_encode(FakeCudaArray((10, 8)), D, n_nonzero_coefs=21)
    with pytest.raises(ValueError, match="not available for CUDA arrays"):
        sf.sparse_encode(FakeCudaArray((10, 8)), D, output="scipy")
    # A column-major mask is valid (copied a chunk at a time: tests/api, emulated backend);
    # an exporter that is neither torch nor CuPy cannot get anything allocated for it.
    mask_cols = FakeCudaArray((10, 8), "|b1", strides=(1, 10))
    with pytest.raises(TypeError, match="torch tensors and CuPy arrays only; `X` comes from"):
        sf.sparse_encode(FakeCudaArray((10, 8)), D, mask=mask_cols)
    with pytest.raises(TypeError, match="`mask` has dtype uint8; expected bool"):
        sf.sparse_encode(FakeCudaArray((10, 8)), D, mask=FakeCudaArray((10, 8), "|u1"))
    with pytest.raises(ValueError, match=r"`Xy` has 5 rows; expected n_components=6"):
        sf.orthogonal_mp_gram(FakeCudaArray((6, 6)), FakeCudaArray((5, 2)))
    with pytest.raises(ValueError, match="`patches` has 5 patches"):
        sf.reconstruct_from_patches_2d(FakeCudaArray((5, 2, 2)), (4, 4))
    with pytest.raises(ValueError, match=r"`patch_size` \(5, 5\) is larger than the image"):
        sf.extract_patches_2d(FakeCudaArray((4, 4)), (5, 5))


def test_outputs_need_torch_or_cupy():
    ctx = _arrays.DeviceContext(framework="cai", device=0, stream=0,
                                arrays={"X": _arrays.describe(FakeCudaArray((2, 2)), "X")})
    with pytest.raises(TypeError, match="torch tensors and CuPy arrays only; `X` comes from"):
        ctx.empty((3,), np.float32)


def test_check_helpers():
    """The named checks work on descriptions: the same for host and device arrays."""
    for make in (lambda shape, t, **kw: FakeCudaArray(shape, t, **kw),
                 lambda shape, t, **kw: np.zeros(shape, np.dtype(t))):
        a = _arrays.describe(make((3, 4), "<f2"), "gram")
        with pytest.raises(TypeError, match="`gram` has dtype float16"):
            _validation.check_float(a, ndim=2)
        v = _arrays.describe(make((3,), "<f4"), "v")
        assert _validation.check_float(v, ndim=(1, 2)).ndim == 1
        with pytest.raises(ValueError, match="`v` must have 2 dimensions"):
            _validation.check_float(v, ndim=2)
    b = _arrays.describe(FakeCudaArray((3, 4), strides=(4, 12)), "x")
    assert not b.rows_contiguous()
