"""kdsnn.export: BN folding, quantization, NIR/ONNX/netx export."""
