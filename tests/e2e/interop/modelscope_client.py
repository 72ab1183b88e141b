"""Runs inside the venv with the official `modelscope` package (scripts/setup_python_interop.sh):
uploads to and downloads from `ms hub serve` through HubApi / snapshot_download, and prints one
JSON object with what it saw. Arguments: MODE TOKEN WORKDIR, MODE "main" (logs in, uploads,
downloads), "anonymous" (no credentials: a private repo must stay invisible), "msdataset"
(MsDataset.load of a zip dataset the test uploaded) or "apis" (the wider
HubApi surface: info, revisions, tags, branches, file lists, commits, single-file and filtered
downloads, deletes, visibility, git clone of create_repo; each call's result or error is reported
by name). MODELSCOPE_DOMAIN points at the server, MODELSCOPE_CREDENTIALS_PATH at a fresh folder per
mode.

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


def listing(folder):
    """Relative paths of every file under `folder`, metadata files (.msc, .mv, ...) included."""
    out = []
    for base, _, files in os.walk(folder):
        out += [os.path.relpath(os.path.join(base, name), folder) for name in files]
    return sorted(out)


def read_text(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def apis(token, work):
    """Calls each API once; returns {name: result} or {name: {"error": "Type: message"}}."""
    from modelscope.hub.file_download import dataset_file_download, model_file_download

    result = {}

    def call(name, fn):
        try:
            result[name] = fn()
        except Exception as e:  # noqa: BLE001
            result[name] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}

    def paths(files):
        return sorted(f["Path"] for f in files)

    def method(name):
        """api.NAME, or a stand-in reporting that this release has no such method (1.38+ dropped
        file_exists, list_model_revisions, list_repo_commits, model_info, dataset_info and
        set_repo_visibility from the compat HubApi)."""
        try:
            return getattr(api, name)
        except AttributeError:
            return lambda *a, **k: "absent"

    def created(answer, repo):
        """create_repo's answer: the repo URL (1.37 and older) or a RepoInfo (1.38+)."""
        if isinstance(answer, str):
            return answer.endswith(f"/models/{repo}")
        return answer.repo_id == repo

    def info(answer, *keys):
        """Fields of get_model / get_dataset: a dict (owner under "Path" before 1.38, "Owner"
        after) or a RepoInfo (1.38+ get_dataset)."""
        if not isinstance(answer, dict):
            answer = {"Name": answer.name, "Owner": answer.owner, "Visibility": answer.visibility}
        answer = dict(answer, Owner=answer.get("Owner") or answer.get("Path"))
        return {k: int(answer[k]) if k == "Visibility" else answer[k] for k in keys}

    def repo_ids(listing):
        """list_datasets' answer: {"datasets": [...]} (1.37 and older) or a PagedResult."""
        if isinstance(listing, dict):
            return [x["id"] for x in listing["datasets"]]
        return [x.repo_id for x in listing.items]

    api = HubApi()
    api.login(token)
    src = os.path.join(work, "apisrc")
    for rel, data in {"a.txt": "a\n", "b.json": "{}", "sub/c.txt": "c\n", "README.md": "# m\n"}.items():
        os.makedirs(os.path.dirname(os.path.join(src, rel)), exist_ok=True)
        with open(os.path.join(src, rel), "w") as f:
            f.write(data)
    m, d = "alice/api-model", "alice/api-data"

    # create_repo's default create_default_config=True git-clones the new repo.
    call("create_repo_default", lambda: created(api.create_repo("alice/api-git"), "alice/api-git"))
    call("create_repo", lambda: created(api.create_repo(m, create_default_config=False), m))
    api.upload_folder(repo_id=m, folder_path=src, commit_message="first")
    call("create_model_tag", lambda: api.create_model_tag(m, "v1.0").endswith("/tags/v1.0"))
    api.upload_file(path_or_fileobj=b"dev\n", path_in_repo="dev.txt", repo_id=m, revision="dev",
                    commit_message="on dev")
    def commit_id(answer):
        """upload_file's answer: a CommitInfo (1.37 and older) or the hub's commit dict (1.38+)."""
        return answer["oid"] if isinstance(answer, dict) else answer.oid

    call("upload_file_commit", lambda: len(commit_id(api.upload_file(
        path_or_fileobj=b"later\n", path_in_repo="later.txt", repo_id=m, commit_message="later"))))

    call("get_model", lambda: info(api.get_model(m), "Name", "Owner", "Visibility"))
    call("get_model_missing", lambda: api.get_model("alice/absent"))
    call("repo_exists", lambda: [api.repo_exists(m), api.repo_exists("alice/absent"),
                                 api.repo_exists(d, repo_type="dataset")])
    call("file_exists", lambda: [method("file_exists")(m, "sub/c.txt"), method("file_exists")(m, "absent.txt")])
    call("branches_and_tags", lambda: [sorted(x) for x in api.get_model_branches_and_tags(m)])
    call("list_model_revisions", lambda: method("list_model_revisions")(m, cutoff_timestamp=4102444800))
    call("get_valid_revision", lambda: api.get_valid_revision(m, revision="v1.0"))
    call("get_model_files", lambda: paths(api.get_model_files(m)))
    call("get_model_files_recursive", lambda: paths(api.get_model_files(m, recursive=True)))
    call("get_model_files_tag", lambda: paths(api.get_model_files(m, revision="v1.0", recursive=True)))
    call("get_model_files_branch", lambda: paths(api.get_model_files(m, revision="dev", recursive=True)))
    call("get_model_files_root", lambda: paths(api.get_model_files(m, root="sub")))
    call("list_repo_commits", lambda: [c.title for c in method("list_repo_commits")(m).commits]
         if hasattr(api, "list_repo_commits") else "absent")
    call("model_info", lambda: sorted(s.rfilename for s in api.model_info(m).siblings)
         if hasattr(api, "model_info") else "absent")
    call("get_endpoint_for_read", lambda: api.get_endpoint_for_read(m) == api.endpoint)

    def second_page():
        """list_repos (1.38+, over /openapi/v1/models): page 2 of 1-item pages."""
        page = method("list_repos")("model", owner="alice", page_number=2, page_size=1)
        return page if page == "absent" else [page.total_count, [r.repo_id for r in page.items]]

    call("list_repos_page_2", second_page)

    cache = os.path.join(work, "apicache")
    call("snapshot_tag", lambda: listing(snapshot_download(m, revision="v1.0", cache_dir=cache + "1")))
    call("snapshot_branch", lambda: listing(snapshot_download(m, revision="dev", cache_dir=cache + "2")))
    call("snapshot_allow", lambda: listing(snapshot_download(m, allow_patterns=["*.txt"], cache_dir=cache + "3")))
    call("snapshot_ignore", lambda: listing(snapshot_download(m, ignore_patterns=["*.txt", "*.md"],
                                                              cache_dir=cache + "4")))
    call("snapshot_local_dir", lambda: listing(snapshot_download(m, local_dir=os.path.join(work, "apild"))))
    call("model_file_download", lambda: read_text(model_file_download(m, "sub/c.txt", cache_dir=cache + "5")))
    call("model_file_download_tag", lambda: os.path.basename(
        model_file_download(m, "a.txt", revision="v1.0", cache_dir=cache + "6")))
    call("model_file_download_local_dir", lambda: read_text(
        model_file_download(m, "later.txt", local_dir=os.path.join(work, "apild2"))))
    call("model_file_download_missing", lambda: model_file_download(m, "absent.txt", cache_dir=cache + "7"))

    # Datasets.
    api.create_repo(d, repo_type="dataset")
    api.upload_folder(repo_id=d, folder_path=src, repo_type="dataset")
    call("get_dataset", lambda: info(api.get_dataset(d), "Name", "Visibility"))
    call("get_dataset_files", lambda: paths(api.get_dataset_files(d)))
    call("get_dataset_files_flat", lambda: paths(api.get_dataset_files(d, recursive=False)))
    call("dataset_info", lambda: sorted(s.rfilename for s in api.dataset_info(d).siblings)
         if hasattr(api, "dataset_info") else "absent")
    call("list_repo_commits_dataset", lambda: len(api.list_repo_commits(d, repo_type="dataset").commits)
         if hasattr(api, "list_repo_commits") else "absent")
    call("list_datasets", lambda: repo_ids(api.list_datasets("alice")))
    call("dataset_file_download", lambda: read_text(dataset_file_download(d, "sub/c.txt", cache_dir=cache + "8")))
    call("dataset_snapshot_allow", lambda: listing(dataset_snapshot_download(
        d, allow_file_pattern=["sub/*"], cache_dir=cache + "9")))

    # Changes: delete files, visibility, delete repos.
    call("delete_files_model", lambda: api.delete_files(m, "model", "*.json")["deleted_files"])
    call("delete_files_dataset", lambda: api.delete_files(d, "dataset", "sub/*")["deleted_files"])
    call("files_after_delete", lambda: [paths(api.get_model_files(m, recursive=True)),
                                        paths(api.get_dataset_files(d))])
    call("set_visibility_model", lambda: method("set_repo_visibility")(m, "model", "private")["Code"]
         if hasattr(api, "set_repo_visibility") else "absent")
    call("set_visibility_dataset", lambda: method("set_repo_visibility")(d, "dataset", "private")["Code"]
         if hasattr(api, "set_repo_visibility") else "absent")
    call("visibility_after", lambda: [info(api.get_model(m), "Visibility")["Visibility"],
                                      info(api.get_dataset(d), "Visibility")["Visibility"]])
    call("delete_repo", lambda: [api.delete_repo("alice/api-git", "model"), api.delete_repo(d, "dataset"),
                                 api.repo_exists("alice/api-git"), api.repo_exists(d, repo_type="dataset")])
    return result


def msdataset(work):
    """MsDataset.load of the zip dataset alice/zipdata, each split: [label, path, sha256 of the
    bytes] per image, as `datasets` gives it (decode=False keeps the path: a member of the
    downloaded archive, `zip://MEMBER::ARCHIVE`, read through fsspec); the rows of the CSV
    dataset alice/csvdata ("csv"); and those of alice/carded's card-declared subsets ("carded
    SUBSET/SPLIT")."""
    import fsspec
    from datasets import Image
    from modelscope.msdatasets import MsDataset

    def image_bytes(image):
        if image.get("bytes"):
            return image["bytes"]
        with fsspec.open(image["path"], "rb") as f:
            return f.read()

    out = {}
    for split in ("train", "test"):
        ds = MsDataset.load("alice/zipdata", split=split, cache_dir=os.path.join(work, "ds-cache"))
        hf = ds.to_hf_dataset() if hasattr(ds, "to_hf_dataset") else ds  # 1.40 returns HF's own
        hf = hf.cast_column("image", Image(decode=False))
        label = hf.features["label"]
        name = label.int2str if hasattr(label, "int2str") else str  # a class label, or the text
        out[split] = sorted([name(row["label"]), row["image"]["path"],
                             hashlib.sha256(image_bytes(row["image"])).hexdigest()] for row in hf)
    # A CSV dataset: its rows as they are.
    ds = MsDataset.load("alice/csvdata", split="train", cache_dir=os.path.join(work, "ds-cache"))
    hf = ds.to_hf_dataset() if hasattr(ds, "to_hf_dataset") else ds
    out["csv"] = [dict(row) for row in hf]
    # Subsets declared by the dataset card's `configs` (README.md front matter).
    for subset, split in (("en", "train"), ("en", "test"), ("zh", "train")):
        ds = MsDataset.load("alice/carded", subset_name=subset, split=split,
                            cache_dir=os.path.join(work, "ds-cache"))
        hf = ds.to_hf_dataset() if hasattr(ds, "to_hf_dataset") else ds
        out[f"carded {subset}/{split}"] = [dict(row) for row in hf]
    return out


def main():
    mode, token, work = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode == "msdataset":
        print(json.dumps(msdataset(work)))
        return
    if mode == "anonymous":
        print(json.dumps(anonymous(work)))
        return
    if mode == "apis":
        print(json.dumps(apis(token, work)))
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
