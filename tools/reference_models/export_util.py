"""Writing model directories: JSON files, ONNX export clean-up, and float arrays packed for JavaScript."""

import base64
import json
import os

import numpy as np
import onnx
from onnx import helper, numpy_helper

MAX_ONNX_BYTES = 10_000_000


def write_json(path, value):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(value, handle, ensure_ascii=False, indent=2)
        handle.write("\n")


def write_text(path, text):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def float32_base64(array):
    """Little-endian float32 bytes, base64: a JS reader gets a Float32Array without parsing numbers."""
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode("ascii")


def replace_transposed_copy(model_path, weight_name):
    """Constant folding turns the tied output projection (x @ W^T) into a second, transposed copy of
    the embedding. Put a Transpose of the original back in its place, as optimum does for tied weights."""
    model = onnx.load(model_path)
    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    source = numpy_helper.to_array(weights[weight_name])
    for init in list(graph.initializer):
        if init.name == weight_name or tuple(init.dims) != source.shape[::-1]:
            continue
        if np.array_equal(numpy_helper.to_array(init), source.T):
            graph.initializer.remove(init)
            node = helper.make_node("Transpose", [weight_name], [init.name], perm=[1, 0], name="tied_lm_head_transpose")
            graph.node.insert(0, node)
            onnx.checker.check_model(model)
            onnx.save(model, model_path)
            return True
    return False


def check_onnx(model_path):
    onnx.checker.check_model(onnx.load(model_path))
    size = os.path.getsize(model_path)
    if size > MAX_ONNX_BYTES:
        raise SystemExit(f"{model_path} is {size} bytes, over the {MAX_ONNX_BYTES} byte limit")
    return size


def link_root_model(model_dir):
    """transformers.js loads onnx/model.onnx; our own tools load model.onnx. One file, two names."""
    link = os.path.join(model_dir, "model.onnx")
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(os.path.join("onnx", "model.onnx"), link)


def format_bytes(size):
    return f"{size:,} bytes ({size / 1e6:.2f} MB)"
