"""Inference: the model contract (spec), backends behind one Protocol (backend), ONNX export.

Modules are imported on demand (torch, onnxruntime and tensorrt are heavy): use
``from depth_ros.inference.backend import create_backend``.
"""
