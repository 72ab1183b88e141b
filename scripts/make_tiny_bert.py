#!/usr/bin/env python3
"""Writes tests/data/infer/tiny/: small random-initialised BERT-family models (hidden 32, 2 layers)
in ModelScope layout, with reference outputs from transformers, for tests/e2e/test_infer_heads.py.

  python scripts/make_tiny_bert.py       # needs torch + transformers (versions go into expected.json)

Folders: cls (text-classification, safetensors), ner (token-classification, BIO), ws
(word-segmentation, BIES), mlm (fill-mask, tied decoder), bin (sentence-embedding from a
torch.save pytorch_model.bin), roberta (sentence-embedding, RoBERTa positions).
"""
import json
import os
import shutil

import torch
import transformers
from transformers import (BertConfig, BertForMaskedLM, BertForSequenceClassification,
                          BertForTokenClassification, BertModel, BertTokenizerFast, RobertaConfig,
                          RobertaModel)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "infer", "tiny")
VOCAB = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(".,!?'-") + list("abcdefghijklmnopqrstuvwxyz") +
         "the cat sat on mat dog john lives in london paris and is good bad movie very".split() +
         ["##s", "##ing", "##ed", "##er"] + list("北京是中国的首都我爱自然语言处理上海") + list("0123456789"))

TEXTS = ["the cat sat on the mat.", "john lives in london and paris!", "a very good movie",
         "北京是中国的首都", "我爱自然语言处理", "dogs sitting on mats", "xyz unknown words"]
PAIRS = [("the cat sat", "the dog sat"), ("a good movie", "a bad movie"), ("北京", "上海")]
MASKED = ["the cat sat on the [MASK].", "john [MASK] in london", "[MASK] is a [MASK] movie"]
VERSIONS = {"torch": torch.__version__, "transformers": transformers.__version__}


def config(**kw):
    base = dict(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                intermediate_size=37, max_position_embeddings=64, type_vocab_size=2, hidden_act="gelu")
    base.update(kw)
    return BertConfig(**base)


def folder(name, task, model, tok, bin_format=False, model_type="bert"):
    d = os.path.join(ROOT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    if bin_format:
        model.config.save_pretrained(d)
        torch.save(model.state_dict(), os.path.join(d, "pytorch_model.bin"))
    else:
        model.save_pretrained(d, safe_serialization=True)
    tok.save_pretrained(d)
    for extra in ("tokenizer.json", "special_tokens_map.json"):
        p = os.path.join(d, extra)
        if os.path.exists(p):
            os.remove(p)
    with open(os.path.join(d, "configuration.json"), "w") as f:
        json.dump({"framework": "pytorch", "task": task, "model": {"type": model_type},
                   "pipeline": {"type": task}}, f, indent=2)
    return d


def dump(d, payload):
    payload["versions"] = VERSIONS
    with open(os.path.join(d, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(payload, f, ensure_ascii=False)
        f.write("\n")


def main():
    torch.manual_seed(0)
    os.makedirs(ROOT, exist_ok=True)
    vocab_file = os.path.join(ROOT, "vocab.txt")
    with open(vocab_file, "w") as f:
        f.write("\n".join(VOCAB) + "\n")
    tok = BertTokenizerFast(vocab_file=vocab_file, do_lower_case=True)

    # text-classification (single and pair)
    labels = {0: "negative", 1: "neutral", 2: "positive"}
    m = BertForSequenceClassification(config(num_labels=3, id2label=labels,
                                             label2id={v: k for k, v in labels.items()})).eval()
    d = folder("cls", "text-classification", m, tok)
    with torch.no_grad():
        single = [torch.softmax(m(**tok(t, return_tensors="pt")).logits[0], -1).tolist() for t in TEXTS]
        pair = [torch.softmax(m(**tok(a, b, return_tensors="pt")).logits[0], -1).tolist() for a, b in PAIRS]
    dump(d, {"labels": [labels[i] for i in range(3)], "texts": TEXTS, "probs": single,
             "pairs": [list(p) for p in PAIRS], "pair_probs": pair})

    # token-classification (BIO) and word-segmentation (BIES)
    for name, task, tags in (("ner", "named-entity-recognition", ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]),
                             ("ws", "word-segmentation", ["B", "E", "M", "S"])):
        id2label = dict(enumerate(tags))
        m = BertForTokenClassification(config(num_labels=len(tags), id2label=id2label,
                                              label2id={v: k for k, v in id2label.items()})).eval()
        d = folder(name, task, m, tok)
        rows = []
        with torch.no_grad():
            for t in TEXTS:
                enc = tok(t, return_tensors="pt")
                p = torch.softmax(m(**enc).logits[0], -1)[1:-1]
                rows.append({"text": t, "labels": [tags[i] for i in p.argmax(-1).tolist()],
                             "scores": p.max(-1).values.tolist(),
                             "word_ids": enc.word_ids()[1:-1],
                             "offsets": tok(t, return_offsets_mapping=True)["offset_mapping"][1:-1]})
        dump(d, {"tags": tags, "items": rows})

    # fill-mask with the decoder tied to the word embeddings
    m = BertForMaskedLM(config()).eval()
    d = folder("mlm", "fill-mask", m, tok)
    rows = []
    with torch.no_grad():
        for t in MASKED:
            enc = tok(t, return_tensors="pt")
            logits = m(**enc).logits[0]
            pos = (enc["input_ids"][0] == tok.mask_token_id).nonzero()[:, 0]
            probs = torch.softmax(logits[pos], -1)
            top = probs.topk(5, -1)
            rows.append({"text": t, "tokens": [[tok.convert_ids_to_tokens(i) for i in r] for r in top.indices.tolist()],
                         "scores": top.values.tolist()})
    dump(d, {"items": rows})

    # sentence-embedding from pytorch_model.bin (BertModel, mean pooling + normalisation)
    def embed(model, texts):
        out = []
        with torch.no_grad():
            for t in texts:
                enc = tok(t, return_tensors="pt")
                h = model(**enc).last_hidden_state[0]
                e = h.mean(0)
                out.append((e / e.norm()).tolist())
        return out

    m = BertModel(config()).eval()
    d = folder("bin", "sentence-embedding", m, tok, bin_format=True)
    dump(d, {"texts": TEXTS, "embeddings": embed(m, TEXTS)})

    rc = RobertaConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=37, max_position_embeddings=72, type_vocab_size=1, pad_token_id=0,
                       hidden_act="gelu")
    m = RobertaModel(rc, add_pooling_layer=False).eval()
    d = folder("roberta", "sentence-embedding", m, tok, model_type="roberta")

    def embed_roberta(texts):
        out = []
        with torch.no_grad():
            for t in texts:
                enc = tok(t, return_tensors="pt")
                h = m(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state[0]
                e = h.mean(0)
                out.append((e / e.norm()).tolist())
        return out

    dump(d, {"texts": TEXTS, "embeddings": embed_roberta(TEXTS)})
    os.remove(vocab_file)


if __name__ == "__main__":
    main()
