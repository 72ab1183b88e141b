#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/ (committed; run
again only to change them). Small, valid or nearly valid inputs that reach deep into each parser;
libFuzzer mutates from there. Standard library only, except the two torch.save seeds (python3-torch)
and the JPEG seed (python3-pil) under Debian's /usr/bin/python3 (scripts/setup.sh installs both)."""
import base64
import collections
import io
import json
import os
import pickle
import struct
import sys
import zipfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def csv():
    # The first byte is the options byte of fuzz_csv.cpp: bit 0 tab, bit 1 no header, bit 2 text.
    put("csv", "basic", "\0id,text,label,score\n1,hello,true,0.5\n2,\"a, \"\"quoted\"\"\nline\",false,\n")
    put("csv", "tsv_noheader", "\3a\t1\r\nb\t2\r\n")
    put("csv", "bom_types", "\4\xef\xbb\xbfx,y,z\n-3,1e5,TRUE\n,NaN,\n")
    put("csv", "file_column", "\0image:FILE,label\nimages/a.png,cat\n")


def jsonl():
    put("jsonl", "lines", '{"text": "a", "label": 1}\n{"text": "b", "tags": ["x", {"y": null}]}\n\n'
                          '{"score": 0.25, "ok": true}\n')
    put("jsonl", "array", '[{"a": 1}, {"b": "\\u00e9"}]')
    put("jsonl", "bad_line", '{"a": 1}\nnot json\n{"a": -9223372036854775808}\n')
    put("jsonl", "bom_crlf", '\ufeff{"q": "x"}\r\n{"q": 18446744073709551615}\r\n')


def config():
    cfg = {"framework": "pytorch", "task": "text-classification",
           "model": {"type": "bert", "num_labels": 2},
           "pipeline": {"type": "text-classification"},
           "preprocessor": {"type": "sen-cls-tokenizer", "max_length": 128},
           "train": {"max_epochs": 2, "optimizer": {"type": "AdamW", "lr": 2e-5},
                     "hooks": [{"type": "CheckpointHook", "interval": 1}]}}
    put("config_json", "configuration.json", json.dumps(cfg, indent=2))
    put("config_json", "nested", '{"a": [1, 2.5, -3e-2, null, true, "\\ud83d\\ude00"], "b": {"c": {}}}')
    put("config_json", "comment_trailing", '{"a": 1,}\n')
    put("config_yaml", "trainer.yaml",
        "framework: pytorch\ntask: text-classification\nmodel:\n  type: bert\n  num_labels: 2\n"
        "train:\n  max_epochs: 2\n  optimizer: {type: AdamW, lr: 2.0e-5}\n  hooks:\n"
        "    - type: CheckpointHook\n      interval: 1\n")
    put("config_yaml", "anchors.yaml", "base: &b {x: 1, y: [a, b]}\nother:\n  <<: *b\n  z: ~\n")
    put("config_yaml", "scalars.yaml",
        "a: 0x1F\nb: .inf\nc: !!str 12\nd: |\n  multi\n  line\ne: 'it''s'\nf: [1, {g: h}]\n")


def safetensors():
    def file(header, data):
        h = json.dumps(header).encode()
        h += b" " * ((8 - len(h) % 8) % 8)
        return struct.pack("<Q", len(h)) + h + data
    put("safetensors", "two_tensors", file(
        {"__metadata__": {"format": "pt"},
         "w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
         "b": {"dtype": "I64", "shape": [1], "data_offsets": [16, 24]}},
        struct.pack("<4f", 1, 2, 3, 4) + struct.pack("<q", 7)))
    put("safetensors", "empty_shapes", file(
        {"s": {"dtype": "BF16", "shape": [], "data_offsets": [0, 2]},
         "z": {"dtype": "BOOL", "shape": [0, 3], "data_offsets": [2, 2]}}, b"\x80\x3f"))
    put("safetensors", "bad_offsets", file(
        {"w": {"dtype": "F16", "shape": [4], "data_offsets": [0, 9]}}, b"\0" * 8))


def parquet():
    # The file of tests/unit/parquet_test.cpp, written once by pyarrow 26.0.1 (uncompressed,
    # dictionary pages, data page v1; int64 / string / list<int64> / bool columns with nulls).
    small = bytes.fromhex(
        "504152311504152015204c15041500120000010000000000000003000000000000001500151215122c15061510150615"
        "061c0000000200000003050103021504151e151e4c1504150012000001000000610600000068c3a96c6c6f1500151215"
        "122c15061510150615061c0000000200000003030103021504152015204c150415001200000100000000000000020000"
        "00000000001500152015202c15081510150615061c00000002000000030203000000034f000103021500150e150e2c15"
        "061500150615061c000000020000000601051504197c35001806736368656d61150800150425021802696400150c2502"
        "18047465787425004c1c0000003502180474616773150215064c3c000000350418046c69737415020015042502180765"
        "6c656d656e74001500250218026f6b001606191c194c26001c1504193500061019180269641500160616741674264426"
        "08292c15041500150200150015101502003c29061926020400000026001c150c19350006101918047465787415001606"
        "1672167226b601267c292c15041500150200150015101502003c160e19061926020400000026001c1504193500061019"
        "380474616773046c69737407656c656d656e741500160816820116820126aa0226ee01292c1504150015020015001510"
        "1502003c2926060219460202000400000026001c1500192506001918026f6b150016061634163426f002491c15001500"
        "1502003c290619260006000000169c0316062608169c03002820706172717565742d6370702d6172726f772076657273"
        "696f6e2032362e302e31194c1c00001c00001c00001c0000008701000050415231")
    put("parquet", "small_dict_v1", small)
    # The footer alone, after the magic: every offset in it points at missing pages.
    put("parquet", "footer_only", b"PAR1" + small[-8 - 391:])


def pickles():
    put("pickle", "p2_list_of_dicts", pickle.dumps([{"Path": "a.txt", "Revision": "abc"}], protocol=2))
    put("pickle", "p4_ordered", pickle.dumps(collections.OrderedDict(
        [("a", 1), ("b", [1.5, None, True, b"x", (1, 2, 3)]), ("c", 2 ** 70)]), protocol=4))
    put("pickle", "p5_str_dict", pickle.dumps({"id": "alice/demo"}, protocol=5))
    try:
        import torch
    except ImportError:
        print("make_corpus: no torch; keeping the torch.save seeds as they are", file=sys.stderr)
        return
    sd = collections.OrderedDict([("w", torch.arange(4, dtype=torch.float32).view(2, 2)),
                                  ("b", torch.zeros(2, dtype=torch.int64)[1:])])
    buf = io.BytesIO()
    torch.save(sd, buf, _use_new_zipfile_serialization=False)
    put("pickle", "torch_legacy", buf.getvalue())
    buf = io.BytesIO()
    torch.save(sd, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
        name = next(n for n in z.namelist() if n.endswith("/data.pkl"))
        put("pickle", "torch_data_pkl", z.read(name))


def zips():
    def archive(entries, links=()):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for name, data, method in entries:
                z.writestr(zipfile.ZipInfo(name), data, compress_type=method)
            for name, target in links:
                info = zipfile.ZipInfo(name)
                info.create_system = 3
                info.external_attr = (0o120777 << 16)
                z.writestr(info, target)
        return buf.getvalue()
    put("zip", "dataset", archive([("train/", b"", zipfile.ZIP_STORED),
                                   ("train/a.csv", b"text,label\nhi,1\n", zipfile.ZIP_DEFLATED),
                                   ("train/b.txt", b"x" * 200, zipfile.ZIP_DEFLATED)]))
    put("zip", "link", archive([("data/x.txt", b"1", zipfile.ZIP_STORED)], [("data/y.txt", "x.txt")]))
    put("zip", "unsafe_name", archive([("../evil", b"1", zipfile.ZIP_STORED)]))


def images():
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    def png(width, height, color_type, depth, rows):
        raw = b"".join(b"\0" + r for r in rows)
        return (b"\x89PNG\r\n\x1a\n" +
                chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    put("image", "rgb_2x2.png", png(2, 2, 2, 8, [b"\xff\0\0\0\xff\0", b"\0\0\xff\xff\xff\xff"]))
    put("image", "grey_alpha_3x1.png", png(3, 1, 4, 8, [b"\x10\xff\x80\x80\xf0\0"]))
    put("image", "palette_1bit.png",
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 1, 1, 3, 0, 0, 0)) +
        chunk(b"PLTE", b"\0\0\0\xff\xff\xff") + chunk(b"IDAT", zlib.compress(b"\0\xaa")) +
        chunk(b"IEND", b""))
    try:
        from PIL import Image
    except ImportError:
        print("make_corpus: no PIL; keeping the JPEG seeds as they are", file=sys.stderr)
        return
    img = Image.new("RGB", (8, 8))
    for i in range(64):
        img.putpixel((i % 8, i // 8), (i * 4, 255 - i * 4, (i * 37) % 256))
    for name, kw in (("rgb_8x8.jpg", {"quality": 50}),
                     ("progressive_8x8.jpg", {"quality": 30, "progressive": True})):
        buf = io.BytesIO()
        img.save(buf, "JPEG", **kw)
        put("image", name, buf.getvalue())
    buf = io.BytesIO()
    img.convert("L").save(buf, "JPEG", quality=40)
    put("image", "grey_8x8.jpg", buf.getvalue())


def hub_parsers():
    # Line 1: a repo id and repo path; line 2: a host; line 3 on: a Set-Cookie header.
    put("hub_parsers", "login", "alice/bert-base.v2\n127.0.0.1:8080\n"
        "m_session_id=abc; Path=/; HttpOnly; Max-Age=2592000\n")
    put("hub_parsers", "domain", "damo/nlp_structbert\nhub.example.com\n"
        "k=v; Domain=.example.com; Expires=Wed, 21 Oct 2015 07:28:00 GMT; Secure\n")
    put("hub_parsers", "paths", "dir/sub/file.bin\n[::1]:9000\nx=\"quoted\"; max-age=-1\n")


def hub_request():
    def req(method, path, body=None, token=True, headers=()):
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
        if token:
            lines.append("Authorization: Bearer @TOKEN@")
        lines += list(headers)
        data = b""
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + data
    repo = "/api/v1/models/alice/demo"
    put("hub_request", "file_range",
        req("GET", repo + "/repo?Revision=master&FilePath=a.txt", token=False,
            headers=["Range: bytes=1-3"]))
    put("hub_request", "file_multi_range",
        req("GET", repo + "/repo?FilePath=dir%2Fb.json", headers=["Range: bytes=-2, 0-0"]))
    put("hub_request", "files", req("GET", repo + "/repo/files?Revision=master&Recursive=True&Root=dir"))
    put("hub_request", "info_revisions", req("GET", repo, token=False) + req("GET", repo + "/revisions"))
    put("hub_request", "commits", req("GET", repo + "/commits?PageNumber=1&PageSize=2"))
    put("hub_request", "create_model",
        req("POST", "/api/v1/models", {"Path": "alice", "Name": "m2", "Visibility": "private"}))
    put("hub_request", "commit",
        req("POST", "/api/v1/repos/models/alice/demo/commit/master",
            {"commit_message": "c", "actions": [
                {"action": "create", "path": "n/x.txt", "type": "normal", "encoding": "base64",
                 "content": base64.b64encode(b"hi").decode(), "size": 2},
                {"action": "delete", "path": "a.txt"}]}))
    put("hub_request", "lfs_batch",
        req("POST", "/api/v1/repos/models/alice/demo/info/lfs/objects/batch",
            {"operation": "upload", "objects": [{"oid": "a" * 64, "size": 3}]}))
    put("hub_request", "put_blob",
        req("PUT", "/api/v1/repos/models/alice/demo/info/lfs/objects/"
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad?size=3", b"abc"))
    put("hub_request", "login", req("POST", "/api/v1/login", {"AccessToken": "@TOKEN@"}, token=False))
    put("hub_request", "tag", req("POST", repo + "/repo/tag", {"TagName": "v1", "Revision": "master"}))
    put("hub_request", "git", req("GET", "/alice/demo.git/info/refs?service=git-upload-pack",
                                  token=False, headers=["Cookie: m_session_id=@TOKEN@"]))
    put("hub_request", "dataset_form", req("POST", "/api/v1/datasets?Owner=alice&Name=d1", b""))


if __name__ == "__main__":
    csv()
    jsonl()
    config()
    safetensors()
    parquet()
    pickles()
    zips()
    images()
    hub_parsers()
    hub_request()
