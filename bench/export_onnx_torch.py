#!/usr/bin/env python3
"""Python side of bench/export_onnx.sh: torch.onnx.export of the same models `ms export` writes
(Debian's torch 1.13, the LibTorch ms links), timed.

    export_onnx_torch.py minilm MODEL_DIR OUT.onnx    # BertModel + mean pooling + L2 normalise
    export_onnx_torch.py resnet MODEL_DIR OUT.onnx    # the torchvision ResNet of the folder

Prints {"load_s", "export_s"}: loading the model, then torch.onnx.export alone (opset 14,
dynamic batch and sequence axes, as `ms export` writes).
"""
import json
import sys
import time

t0 = time.perf_counter()
import torch

kind, model_dir, out = sys.argv[1], sys.argv[2], sys.argv[3]
torch.set_num_threads(2)
if kind == "minilm":
    from transformers import AutoModel

    class Embedder(torch.nn.Module):
        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return hidden, torch.nn.functional.normalize(pooled, p=2, dim=1)

    model = Embedder(AutoModel.from_pretrained(model_dir)).eval()
    ids = torch.ones(2, 16, dtype=torch.long)
    args = (ids, torch.ones_like(ids), torch.zeros_like(ids))
    names_in = ["input_ids", "attention_mask", "token_type_ids"]
    names_out = ["last_hidden_state", "sentence_embedding"]
    axes = {n: {0: "batch", 1: "sequence"} for n in names_in}
    axes.update({"last_hidden_state": {0: "batch", 1: "sequence"}, "sentence_embedding": {0: "batch"}})
else:
    import torchvision
    from safetensors.torch import load_file

    with open(f"{model_dir}/configuration.json") as f:
        depth = json.load(f)["model"].get("depth", 18)
    state = load_file(f"{model_dir}/model.safetensors")
    model = getattr(torchvision.models, f"resnet{depth}")(num_classes=state["fc.weight"].shape[0])
    model.load_state_dict(state)
    model.eval()
    args = (torch.rand(2, 3, 224, 224),)
    names_in, names_out = ["pixel_values"], ["logits"]
    axes = {"pixel_values": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch"}}
t1 = time.perf_counter()
with torch.no_grad():
    torch.onnx.export(model, args, out, input_names=names_in, output_names=names_out,
                      dynamic_axes=axes, opset_version=14)
t2 = time.perf_counter()
print(json.dumps({"torch": torch.__version__, "load_s": t1 - t0, "export_s": t2 - t1}))
