"""Runs inside the venv with the official `modelscope` package (scripts/setup_python_interop.sh):
uploads to and downloads from `ms hub serve` through HubApi / snapshot_download, and prints one
JSON object with what it saw. Arguments: MODE TOKEN WORKDIR, MODE "main" (logs in, uploads,
downloads) or "anonymous" (no credentials: a private repo must stay invisible). MODELSCOPE_DOMAIN
points at the server, MODELSCOPE_CREDENTIALS_PATH at a fresh folder per mode.

The client sends an explicit `token=` as a cookie whose domain is the endpoint's host:port, which
cookie matching drops when the endpoint has a port; the cookie saved by login() has no port and
works. So authenticated calls here rely on login()."""
import hashlib
import json
import os
import sys

from modelscope.hub.api import HubApi
from modelscope.hub.snapshot_download import dataset_snapshot_download, snapshot_download


def tree_digest(folder):
    out = {}
    for base, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith("."):
                continue
            p = os.path.join(base, name)
            with open(p, "rb") as f:
                out[os.path.relpath(p, folder)] = hashlib.sha256(f.read()).hexdigest()
    return out


def anonymous(work):
    try:
        snapshot_download("alice/interop-private", cache_dir=os.path.join(work, "anon"))
        return {"private_without_token": "downloaded"}
    except Exception as e:  # noqa: BLE001
        return {"private_without_token": type(e).__name__}


def main():
    mode, token, work = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode == "anonymous":
        print(json.dumps(anonymous(work)))
        return
    result = {}
    src = os.path.join(work, "src")
    api = HubApi()
    git_token, _ = api.login(token)
    result["login"] = bool(git_token)

    # Models: create (no git push of a default config: the server speaks HTTP only), upload, download.
    api.create_repo("alice/interop-model", visibility="public", exist_ok=True, create_default_config=False)
    api.upload_folder(repo_id="alice/interop-model", folder_path=src, commit_message="upload folder")
    api.upload_file(path_or_fileobj=b"single file\n", path_in_repo="extra/single.txt",
                    repo_id="alice/interop-model", commit_message="upload one file")
    result["listed_models"] = [m["Name"] for m in api.list_models("alice")["Models"]]
    model_dir = snapshot_download("alice/interop-model", cache_dir=os.path.join(work, "cache"))
    result["model_files"] = tree_digest(model_dir)

    # Datasets.
    api.create_repo("alice/interop-data", repo_type="dataset", visibility="public", exist_ok=True)
    api.upload_folder(repo_id="alice/interop-data", folder_path=src, repo_type="dataset",
                      commit_message="dataset upload")
    data_dir = dataset_snapshot_download("alice/interop-data", cache_dir=os.path.join(work, "dcache"))
    result["dataset_files"] = tree_digest(data_dir)

    # Private model: invisible without the token, downloadable with it.
    api.create_repo("alice/interop-private", visibility="private", exist_ok=True, create_default_config=False)
    api.upload_file(path_or_fileobj=b"secret\n", path_in_repo="secret.txt", repo_id="alice/interop-private")
    private_dir = snapshot_download("alice/interop-private", cache_dir=os.path.join(work, "pcache"))
    result["private_files"] = tree_digest(private_dir)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
