# SPDX-License-Identifier: Apache-2.0
# safetensors_peer.py: the Python reference peer for the SafeTensors interop tests (safetensors, numpy, ml_dtypes).
#
#   python safetensors_peer.py write OUT_DIR      peer.safetensors + peer.json (what we must read),
#                                                  conversion.safetensors (numpy/ml_dtypes rounding)
#   python safetensors_peer.py check FILE JSON    load FILE with safetensors.numpy.load_file and compare
#                                                  with JSON {metadata, tensors: {name: {dtype, shape, hex}}}
import json
import sys

import ml_dtypes
import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}
NAMES = {np.dtype(v).name: k for k, v in DTYPES.items()}


def peer_tensors(rng):
    tensors = {}
    for name, dtype in DTYPES.items():
        if name == "BOOL":
            values = rng.integers(0, 2, size=(3, 5)).astype(np.bool_)
        elif np.issubdtype(np.dtype(dtype), np.integer):
            info = np.iinfo(dtype)
            values = rng.integers(info.min, info.max, size=(3, 5), dtype=dtype, endpoint=True)
            values.flat[0], values.flat[1] = info.min, info.max
        else:
            values = (rng.standard_normal((3, 5)) * 100).astype(dtype)
            values.flat[0], values.flat[1], values.flat[2] = np.inf, -0.0, np.nan
        tensors[f"t.{name.lower()}"] = values
    tensors["scalar.f32"] = np.array(3.5, dtype=np.float32)
    tensors["empty.bf16"] = np.zeros((0, 7), dtype=ml_dtypes.bfloat16)
    tensors["big.bf16"] = rng.standard_normal((64, 129)).astype(ml_dtypes.bfloat16)
    return tensors


def describe(tensors, metadata):
    return {
        "metadata": metadata,
        "tensors": {
            k: {"dtype": NAMES[v.dtype.name], "shape": list(v.shape), "hex": np.ascontiguousarray(v).tobytes().hex(),
                "f32hex": v.astype(np.float32).tobytes().hex() if v.dtype.kind == "f" or v.dtype.name == "bfloat16" else None}
            for k, v in tensors.items()
        },
    }


def write(out):
    rng = np.random.default_rng(20261129)
    tensors = peer_tensors(rng)
    metadata = {"producer": "safetensors-python", "format": "np"}
    save_file(tensors, f"{out}/peer.safetensors", metadata=metadata)
    with open(f"{out}/peer.json", "w") as f:
        json.dump(describe(tensors, metadata), f)

    bits = rng.integers(0, 2**32, size=1 << 20, dtype=np.uint64).astype(np.uint32)
    ties_f16 = (bits[: 1 << 16] & ~np.uint32(0x1FFF)) | np.uint32(0x1000)
    ties_bf16 = (bits[1 << 16: 1 << 17] & ~np.uint32(0xFFFF)) | np.uint32(0x8000)
    edges = np.array([0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001, 0xFFFFFFFF, 0x477FF000,
                      0x477FEFFF, 0x33000000, 0x33000001, 0x387FE000, 0x00000001, 0x007FFFFF, 0x7F7FFFFF],
                     dtype=np.uint32)
    sample = np.concatenate([edges, ties_f16, ties_bf16, bits]).view(np.float32)
    with np.errstate(all="ignore"):
        all16 = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
        conversion = {
            "sample": sample,
            "sample_f16": sample.astype(np.float16),
            "sample_bf16": sample.astype(ml_dtypes.bfloat16),
            "all_f16_as_f32": all16.view(np.float16).astype(np.float32),
            "all_bf16_as_f32": all16.view(ml_dtypes.bfloat16).astype(np.float32),
        }
    save_file(conversion, f"{out}/conversion.safetensors")


def check(path, expected_path):
    with open(expected_path) as f:
        expected = json.load(f)
    loaded = load_file(path)
    problems = []
    if sorted(loaded) != sorted(expected["tensors"]):
        problems.append(f"names {sorted(loaded)} != {sorted(expected['tensors'])}")
    for name, want in expected["tensors"].items():
        got = loaded.get(name)
        if got is None:
            continue
        if NAMES.get(got.dtype.name) != want["dtype"]:
            problems.append(f"{name}: dtype {got.dtype.name} != {want['dtype']}")
        if list(got.shape) != want["shape"]:
            problems.append(f"{name}: shape {list(got.shape)} != {want['shape']}")
        if np.ascontiguousarray(got).tobytes().hex() != want["hex"]:
            problems.append(f"{name}: bytes differ")
    with safe_open(path, "np") as f:
        metadata = f.metadata() or {}
    if metadata != expected["metadata"]:
        problems.append(f"metadata {metadata} != {expected['metadata']}")
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print(f"ok: {len(loaded)} tensors")


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2])
    elif sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
