"""Writes tests/data/metrics/text_generation_reference.json: fixed generated / target text pairs and
what ModelScope's TextGenerationMetric (text-gen-metric) reports for them, which
tests/unit/metrics_test.cpp compares ms's text-gen-metric against.

    python scripts/make_text_generation_reference.py MODELSCOPE_SOURCE_DIR

Runs ModelScope's own metric code: modelscope/metrics/text_generation_metric.py and
modelscope/utils/chinese_utils.py are loaded from MODELSCOPE_SOURCE_DIR (a checkout of
github.com/modelscope/modelscope; the rest of the package is not needed and stands in as stubs), over
the PyPI packages it computes with, pinned: in a venv,

    pip install rouge==1.0.1 nltk==3.10.4
"""
import importlib.util
import json
import os
import random
import sys
import types

import nltk
import rouge

PINNED = {"rouge": "1.0.1", "nltk": "3.10.4"}
for module, version in ((rouge, PINNED["rouge"]), (nltk, PINNED["nltk"])):
    installed = getattr(module, "__version__", None)
    if module is rouge:
        from importlib.metadata import version as dist_version
        installed = dist_version("rouge")
    if installed != version:
        sys.exit(f"{module.__name__} {installed} is installed; the reference is written with {version}")


def load_modelscope_metric(source):
    """TextGenerationMetric from ModelScope's source, with stubs for the registry around it."""
    def stub(name, **attrs):
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        sys.modules[name] = module
        return module

    class Registry:
        def register_module(self, *args, **kwargs):
            return lambda cls: cls

    class MetricKeys:
        BLEU_1, BLEU_4, ROUGE_1, ROUGE_L = "bleu-1", "bleu-4", "rouge-1", "rouge-l"

    stub("modelscope", __path__=[])
    stub("modelscope.metainfo", Metrics=types.SimpleNamespace(text_gen_metric="text-gen-metric"))
    stub("modelscope.metrics", __path__=[])
    stub("modelscope.metrics.base", Metric=object)
    stub("modelscope.metrics.builder", METRICS=Registry(), MetricKeys=MetricKeys)
    stub("modelscope.utils", __path__=[])
    stub("modelscope.utils.registry", default_group="default")
    for name, path in (("modelscope.utils.chinese_utils", "modelscope/utils/chinese_utils.py"),
                       ("modelscope.metrics.text_generation_metric",
                        "modelscope/metrics/text_generation_metric.py")):
        spec = importlib.util.spec_from_file_location(name, os.path.join(source, path))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules["modelscope.metrics.text_generation_metric"].TextGenerationMetric


TextGenerationMetric = load_modelscope_metric(sys.argv[1])
cases = []


def add_case(name, pairs, batch=4, options=None):
    """The metric over `pairs` (generated, target), fed in batches of `batch` as a trainer would."""
    options = options or {}
    metric = TextGenerationMetric(**options)
    pred_key, target_key = options.get("pred_text", "preds"), options.get("target_text", "tgts")
    batches = []
    for i in range(0, len(pairs), batch):
        part = pairs[i:i + batch]
        outputs = {pred_key: [p for p, _ in part]}
        inputs = {target_key: [t for _, t in part]}
        metric.add(outputs, inputs)
        batches.append({"outputs": outputs, "inputs": inputs})
    cases.append({"name": name, "options": options, "batches": batches,
                  "expected": {k: float(v) for k, v in metric.evaluate().items()}})


add_case("english", [
    ("the cat sat on the mat", "the cat is on the mat"),
    ("There is a cat on the mat.", "A cat sits on the mat. It is asleep."),
    ("a quick brown fox jumps over the lazy dog", "the quick brown fox jumped over a lazy dog"),
    ("hello world", "goodbye world"),
    ("It was the best of times, it was the worst of times.",
     "It was the best of times. It was the age of wisdom."),
    ("one. two. three", "one two. three. four"),
])
add_case("chinese", [
    ("床前明月光，疑是地上霜。", "床前明月光，疑是地上霜。"),
    ("举头望明月", "举头望明月，低头思故乡。"),
    ("白日依山尽，黄河入海流", "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。"),
    ("今天天气很好 we went to 北京 in 2024.", "今天天气不错，我们去了北京。"),
    ("春眠不觉晓　处处闻啼鸟", "春眠不觉晓，处处闻啼鸟。"),
    ("㐀㐁 𠀀 豈 more", "㐀 𠀀𠀁 豈 more text"),
], batch=2)
add_case("one word", [("cat", "cat"), ("cat", "dog"), ("猫", "猫")])
add_case("repeated words", [
    ("the the the the the the the", "the cat is on the mat"),
    ("cat cat cat", "cat"),
    ("a b a b a b", "b a b a"),
    ("好 好 好 好", "好好学习"),
])
# Pairs whose generated or target text is empty once spaces and dots are gone: left out of ROUGE
# but counted in its mean's denominator, and scored by BLEU as they are.
add_case("empty texts", [
    ("", "the cat is on the mat"),
    ("the cat is on the mat", ""),
    (" . . ", "a cat"),
    ("a cat", "a cat"),
    ("...", "..."),
    ("cat.", "cat . ."),
])
add_case("white space", [
    ("the\tcat\nsat  on\r\nthe mat", "the cat sat\u00a0on the\u3000mat"),
    ("word\u2003word\x1cword", "word word word"),
    ("  padded  ", "padded"),
])
add_case("options", [("a b c", "a b d"), ("x y", "x y z")],
         options={"target_text": "reference", "pred_text": "generated"})

# A larger seeded case over a small vocabulary (many shared and repeated n-grams, some sentences),
# in batches of 7 so that the test's two halves are uneven.
rng = random.Random(7)
vocab = ["the", "a", "cat", "dog", "sat", "on", "mat", "and", "ran", "away", "is", "big", ".",
         "月", "光", "明", "，", "。"]


def text(length):
    return " ".join(rng.choice(vocab) for _ in range(length))


pairs = []
for _ in range(40):
    target = text(rng.randint(1, 14))
    pred = text(rng.randint(1, 14)) if rng.random() < 0.6 else target.replace("cat", "dog", 1)
    pairs.append((pred, target))
add_case("seeded", pairs, batch=7)

out = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "metrics",
                   "text_generation_reference.json")
with open(out, "w", encoding="utf-8") as f:
    json.dump({"written_by": "scripts/make_text_generation_reference.py",
               "packages": PINNED, "cases": cases}, f, ensure_ascii=False, indent=1)
    f.write("\n")
print(f"wrote {len(cases)} cases to {os.path.normpath(out)}")
