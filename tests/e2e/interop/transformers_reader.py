"""Loads a model folder written by `ms train` with Hugging Face transformers and prints what it saw.

Run by tests/e2e/test_train_interop.py in build/venv-transformers (scripts/setup_python_interop.sh):
transformers' own Auto classes, as a user would call them, on ms's output/ and checkpoints.

    python transformers_reader.py MODEL_DIR < {"texts": [...], "checkpoints": [PATH, ...]}
    python transformers_reader.py --serve    # one request per line, with "model_dir"

Prints one JSON object (with --serve: one line per request line, {"error": TRACEBACK} when it
failed; the libraries are imported once for every model): the loading info of from_pretrained (missing, unexpected and mismatched
weights), every warning transformers logged while loading, config.id2label, the tokenizer's class,
and the softmax of the logits of the texts, each alone and all in one padded batch; then, per
checkpoint (a torch.save'd state dict loaded with load_state_dict(strict=True)), the padded batch's
softmax again.
"""
import json
import logging
import sys
import traceback
import warnings

import torch
import transformers
from transformers import AutoModelForSequenceClassification, AutoTokenizer


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def read(model_dir, request):
    texts = request["texts"]

    # transformers logs "Some weights of ... were not initialized / not used" as warnings of its
    # own logger (which does not propagate to the root logger), so collect them there.
    collect = Collect()
    logger = transformers.logging.get_logger("transformers")
    logger.addHandler(collect)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model, info = AutoModelForSequenceClassification.from_pretrained(
                model_dir, output_loading_info=True)
            tokenizer = AutoTokenizer.from_pretrained(model_dir)
    finally:
        logger.removeHandler(collect)
    model.eval()

    def probs(batch):
        encoded = tokenizer(batch, padding=True, return_tensors="pt")
        with torch.no_grad():
            return torch.softmax(model(**encoded).logits, dim=-1).tolist()

    result = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "model_class": type(model).__name__,
        "tokenizer_class": type(tokenizer).__name__,
        "tokenizer_is_fast": tokenizer.is_fast,
        "loading_info": {k: sorted(str(x) for x in v) for k, v in info.items()},
        "warnings": collect.messages + [str(w.message) for w in caught],
        "id2label": {str(k): v for k, v in model.config.id2label.items()},
        "alone": [probs([t])[0] for t in texts],
        "batch": probs(texts),
        "lengths": [len(ids) for ids in tokenizer(texts)["input_ids"]],
        "checkpoints": [],
    }
    for path in request.get("checkpoints", []):
        state = torch.load(path, map_location="cpu")
        keys = model.load_state_dict(state, strict=True)
        result["checkpoints"].append({"path": path, "missing": list(keys.missing_keys),
                                      "unexpected": list(keys.unexpected_keys),
                                      "batch": probs(texts)})
    return result


def serve():
    for line in sys.stdin:
        request = json.loads(line)
        try:
            answer = read(request["model_dir"], request)
        except Exception:  # the test shows it; the next request still gets its answer
            answer = {"error": traceback.format_exc()}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


def main():
    if sys.argv[1] == "--serve":
        serve()
    else:
        json.dump(read(sys.argv[1], json.load(sys.stdin)), sys.stdout)


if __name__ == "__main__":
    main()
