#!/usr/bin/env python3
"""Goldens for ggml's block formats: tests/golden/quant/.

Two independent references, which must agree before anything is written:
  * ggml itself (libggml-base from the llama.cpp sources vendored in the llama-cpp-python sdist,
    built for baseline x86-64, see --ggml): the reference quantizer each type's traits name
    (`from_float_ref`, which is what `ggml_quantize_chunk` and `llama-quantize` run without an
    importance matrix) and its dequantizer (`to_float`);
  * llama.cpp's `gguf` Python package (numpy): quantize for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 and
    dequantize for every type it knows.

Writes input.f32 (the rows), and for each type T: T.bin (quantized bytes) and T.f32 (the
dequantized floats). Checked by tests/quant_test.cpp.

    ~/.venvs/yak-golden/bin/python tools/golden/make_quant_goldens.py --ggml PATH/libggml-base.so
"""
import argparse
import ctypes
import json
import pathlib

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf import quants

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "golden" / "quant"
TYPES = ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K"]
ROW = 256


def make_rows() -> np.ndarray:
    """Sixteen 256-element rows, each a different hazard for a quantizer."""
    rng = np.random.default_rng(20261202)
    rows = []
    rows.append(rng.standard_normal(ROW))                       # plain normal
    rows.append(0.02 * rng.standard_normal(ROW))                # weight-like scale
    r = rng.standard_normal(ROW); r[rng.integers(0, ROW, 6)] *= 25; rows.append(r)  # outliers
    rows.append(rng.uniform(0.1, 1.0, ROW))                     # all positive (min > 0)
    rows.append(-rng.uniform(0.1, 1.0, ROW))                    # all negative
    rows.append(np.zeros(ROW))                                  # all zero
    r = np.full(ROW, 0.75); r[128:] = -0.3; rows.append(r)      # constant blocks (max == min)
    rows.append(1e-20 * rng.standard_normal(ROW))               # below the group epsilon
    rows.append(3e-6 * rng.standard_normal(ROW))                # f16 subnormal scales
    rows.append(2000.0 * rng.standard_normal(ROW))              # large values
    rows.append(np.tile(np.arange(-16, 16) / 2.0, ROW // 32))   # exact ties in rounding
    r = rng.standard_normal(ROW); r[::32] = 0; r[5::32] = 0; rows.append(r)  # zeros inside blocks
    rows.append(rng.laplace(size=ROW))                          # heavy tails
    r = np.zeros(ROW); r[rng.integers(0, ROW, 10)] = rng.standard_normal(10); rows.append(r)  # sparse
    rows.append(np.linspace(-1.0, 1.0, ROW))                    # ramp
    r = rng.standard_normal(ROW); r[:16] = 0; r[64:80] = 1e-30; rows.append(r)  # dead sub-blocks
    return np.ascontiguousarray(np.stack(rows).astype(np.float32))


class TypeTraits(ctypes.Structure):
    _fields_ = [("type_name", ctypes.c_char_p), ("blck_size", ctypes.c_int64),
                ("blck_size_interleave", ctypes.c_int64), ("type_size", ctypes.c_size_t),
                ("is_quantized", ctypes.c_bool), ("to_float", ctypes.c_void_p),
                ("from_float_ref", ctypes.c_void_p)]


ROWFN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)


def ggml_quantize(lib, name: str, x: np.ndarray) -> bytes:
    qt = getattr(T, name)
    tr = lib.ggml_get_type_traits(int(qt)).contents  # ggml's sizes (gguf's table has Q8_1 wrong)
    out = np.zeros(x.size // tr.blck_size * tr.type_size, dtype=np.uint8)
    if name == "Q8_K":  # activation-only type: its reference quantizer is exported directly
        fn = ROWFN(ctypes.cast(lib.quantize_row_q8_K_ref, ctypes.c_void_p).value)
    else:
        fn = ROWFN(tr.from_float_ref)
    fn(x.ctypes.data, out.ctypes.data, x.size)
    if name not in ("Q8_1", "Q8_K"):  # the chunk entry point llama-quantize uses must agree
        chunk = np.zeros_like(out)
        n = lib.ggml_quantize_chunk(int(qt), x.ctypes.data_as(ctypes.c_void_p), chunk.ctypes.data_as(ctypes.c_void_p),
                                    ctypes.c_int64(0), ctypes.c_int64(x.size // ROW), ctypes.c_int64(ROW), None)
        assert n == out.size and chunk.tobytes() == out.tobytes(), name
    return out.tobytes()


def ggml_dequantize(lib, name: str, q: bytes, n: int):
    qt = getattr(T, name)
    y = np.zeros(n, dtype=np.float32)
    buf = np.frombuffer(q, dtype=np.uint8).copy()
    if name == "Q8_K":
        fn = ROWFN(ctypes.cast(lib.dequantize_row_q8_K, ctypes.c_void_p).value)
    else:
        ptr = lib.ggml_get_type_traits(int(qt)).contents.to_float
        if not ptr:
            return None
        fn = ROWFN(ptr)
    fn(buf.ctypes.data, y.ctypes.data, n)
    return y


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ggml", required=True, help="path to libggml-base.so (baseline x86-64 build)")
    args = ap.parse_args()
    lib = ctypes.CDLL(args.ggml)
    lib.ggml_get_type_traits.restype = ctypes.POINTER(TypeTraits)
    lib.ggml_get_type_traits.argtypes = [ctypes.c_int]
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                        ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]

    x = make_rows()
    flat = x.reshape(-1)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "input.f32").write_bytes(flat.tobytes())
    manifest = {"rows": x.shape[0], "row": ROW, "types": {}, "gguf": gguf.__version__ if hasattr(gguf, "__version__") else "",
                "ggml": "llama.cpp vendored in llama-cpp-python 0.3.36"}
    for name in TYPES:
        q = ggml_quantize(lib, name, flat)
        qt = getattr(T, name)
        checks = ["ggml from_float_ref"]
        try:  # the numpy quantizer, where gguf has one
            qn = quants.quantize(x, qt).tobytes()
            assert qn == q, f"{name}: gguf's numpy quantizer disagrees with ggml"
            checks.append("gguf numpy quantize")
        except NotImplementedError:
            pass
        y = ggml_dequantize(lib, name, q, flat.size)
        try:
            yn = quants.dequantize(np.frombuffer(q, dtype=np.uint8).reshape(x.shape[0], -1), qt).reshape(-1)
            yn = yn.astype(np.float32)
            if y is None:
                y = yn
            else:
                assert np.array_equal(y.view(np.uint32), yn.view(np.uint32)), f"{name}: dequantizers disagree"
            checks.append("gguf numpy dequantize")
        except NotImplementedError:
            pass
        (OUT / f"{name.lower()}.bin").write_bytes(q)
        if y is not None:
            (OUT / f"{name.lower()}.f32").write_bytes(y.tobytes())
        manifest["types"][name.lower()] = {"bytes": len(q), "dequantized": y is not None, "checked_by": checks}
        print(f"{name}: {len(q)} bytes; {', '.join(checks)}" + ("" if y is not None else "; no dequantizer"))
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
