"""Interop: the official Python `modelscope` package uploads to and downloads from `ms hub serve`.

Needs the venv made by scripts/setup_python_interop.sh (modelscope pinned there); skipped with a
message when it is absent. The server runs with TLS (a self-signed certificate made by openssl)
because the Python client always builds https:// URLs from MODELSCOPE_DOMAIN.
"""
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import unittest
import urllib.parse
import zipfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SOURCE_DIR, MsTestCase, run_ms  # noqa: E402
from hub_fixture import modelscope_pythons, version_key  # noqa: E402
from hubserver import HubServer  # noqa: E402

CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "interop", "modelscope_client.py")


def png(width, height, rgb):
    """A tiny solid-colour PNG (standard library only)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\0" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def make_zip_dataset(folder):
    """A dataset of zip archives, described twice: README.md's `configs` (what Python's
    MsDataset, through `datasets`, reads: one image folder per split archive) and ModelScope's
    dataset config zipdata.json (meta CSV + zip per split, what `ms dataset` reads).
    Returns {split: {path inside the archive: (label, bytes)}}."""
    images = {"train": {"train/cat/0.png": ("cat", png(3, 2, (200, 10, 10))),
                        "train/cat/1.png": ("cat", png(2, 2, (190, 20, 10))),
                        "train/dog/0.png": ("dog", png(4, 1, (10, 10, 200)))},
              "test": {"test/cat/0.png": ("cat", png(1, 1, (210, 0, 0))),
                       "test/dog/0.png": ("dog", png(1, 3, (0, 0, 220)))}}
    os.makedirs(folder, exist_ok=True)
    for split, files in images.items():
        with zipfile.ZipFile(os.path.join(folder, f"{split}.zip"), "w") as z:
            for name, (_, data) in sorted(files.items()):
                z.writestr(name, data)
            # Labels for `datasets`' image folder loader (4.8.4 takes a label from an archive's
            # folder names wrongly, naming it after the archive).
            z.writestr(f"{split}/metadata.csv", "file_name,label\n" + "".join(
                f"{os.path.relpath(n, split)},{l}\n" for n, (l, _) in sorted(files.items())))
        with open(os.path.join(folder, f"{split}.csv"), "w") as f:
            f.write("image:FILE,label\n" + "".join(f"{n},{l}\n" for n, (l, _) in sorted(files.items())))
    with open(os.path.join(folder, "README.md"), "w") as f:
        f.write("---\nconfigs:\n- config_name: default\n  data_files:\n"
                "  - split: train\n    path: train.zip\n  - split: test\n    path: test.zip\n---\n"
                "# zipdata\n")
    with open(os.path.join(folder, "zipdata.json"), "w") as f:
        json.dump({"default": {s: {"meta": f"{s}.csv", "file": f"{s}.zip"} for s in images}}, f)
    return images


class EndpointRow:
    """One row of docs/hub-endpoints.md: `METHOD /path/{segment}/{path...}`, and the releases
    (table columns) whose cell is not a dash."""

    def __init__(self, method, pattern, versions):
        self.method = method
        regex = ""
        for part in re.split(r"(\{[^}]*\})", pattern):
            if part.startswith("{"):
                regex += ".+" if part.endswith("...}") else "[^/]+"
            else:
                regex += re.escape(part)
        self.regex = re.compile(regex + "$")
        self.versions = versions

    def matches(self, method, target, version):
        path = urllib.parse.unquote(target.split("?")[0])
        return method == self.method and self.regex.match(path) is not None and version in self.versions


def endpoint_table():
    """(release columns, rows) of the endpoint tables in docs/hub-endpoints.md (each table has
    the header `| endpoint | 1.36.3 | 1.40.2 | ... |`)."""
    with open(os.path.join(SOURCE_DIR, "docs", "hub-endpoints.md"), encoding="utf-8") as f:
        lines = [l.strip() for l in f if l.startswith("|")]
    versions, rows = {}, []
    for line in lines:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == "endpoint":
            versions = {i: c for i, c in enumerate(cells) if re.fullmatch(r"\d+\.\d+\.\d+", c)}
            continue
        if set(cells[0]) <= set("- "):
            continue
        method, pattern = cells[0].strip("`").split(" ", 1)
        rows.append(EndpointRow(method, pattern, {v for i, v in versions.items() if cells[i] not in ("", "-")}))
    return sorted(set().union(*(set(r.versions) for r in rows))), rows


def requests_in_log(log):
    """(method, target, status) of each request a debug-logging `ms hub serve` logged."""
    return re.findall(r"hub serve: ([A-Z]+) (\S+) -> (\d+)", log)


class InteropScenarios:
    """The scenarios, run once per tested modelscope release by the classes made below
    (ModelscopeInterop_1_36_3, ModelscopeInterop_1_40_2, ...). `version` and `python` name it."""
    version = None
    python = None

    def setUp(self):
        super().setUp()
        if not self.python:
            self.skipTest("the modelscope venvs are absent: run scripts/setup_python_interop.sh "
                          "(or set MS_MODELSCOPE_PYTHON)")
        self.modern = version_key(self.version) >= (1, 38)  # modelscope-hub underneath
        if not shutil.which("openssl"):
            self.skipTest("openssl is needed to make a self-signed certificate")

    def start_tls_server(self):
        """A fresh `ms hub serve` over https with a self-signed certificate; (server, token, cert)."""
        cert, key = self.path("cert.pem"), self.path("key.pem")
        if not os.path.exists(cert):
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                            "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                           check=True, capture_output=True, timeout=60)
        root = self.path("root")
        token = HubServer(root).token("alice")
        # Debug logging: one line per request, which check_endpoints_documented() reads.
        server = HubServer(root, "--tls-cert", cert, "--tls-key", key).start(env={"MS_LOG_LEVEL": "debug"})
        self.addCleanup(self.check_endpoints_documented, server)
        self.addCleanup(server.stop)
        self.assertTrue(server.endpoint.startswith("https://127.0.0.1:"))
        return server, token, cert

    def check_endpoints_documented(self, server):
        """Every request this client release sent is a row of docs/hub-endpoints.md that names
        the release (so the table stays the truth about what each version calls)."""
        seen = requests_in_log(server.log())
        if os.environ.get("MS_ENDPOINT_LOG"):  # to regenerate the table: every request, raw
            with open(os.environ["MS_ENDPOINT_LOG"], "a") as f:
                f.writelines(f"{self.version}\t{m}\t{t}\t{st}\n" for m, t, st in seen)
        columns, table = endpoint_table()
        # Another release than the table's columns is checked against the column of its kind.
        column = self.version if self.version in columns else next(
            c for c in columns if (version_key(c) >= (1, 38)) == self.modern)
        undocumented = sorted({f"{method} {target.split('?')[0]} -> {status}" for method, target, status in seen
                               if not any(row.matches(method, target, column) for row in table)})
        self.assertEqual(undocumented, [], f"requests of modelscope {self.version} missing from "
                                           "docs/hub-endpoints.md (or its column for this version)")

    def client_env(self, server, cert, work, name):
        """Environment for the Python client: the server as MODELSCOPE_DOMAIN, its certificate
        trusted by requests and by git (create_repo clones), fresh credentials per `name`."""
        env = dict(os.environ, MODELSCOPE_DOMAIN=f"127.0.0.1:{server.port}", MODELSCOPE_ENDPOINT=server.endpoint,
                   REQUESTS_CA_BUNDLE=cert, SSL_CERT_FILE=cert,
                   GIT_SSL_CAINFO=cert, MODELSCOPE_CREDENTIALS_PATH=os.path.join(work, "cred-" + name),
                   MODELSCOPE_CACHE=os.path.join(work, "mscache"), GIT_TERMINAL_PROMPT="0")
        env.pop("MODELSCOPE_API_TOKEN", None)
        # 1.38+'s `modelscope` command (modelscope-hub's) reads MODELSCOPE_HOME for most commands
        # and MODELSCOPE_CREDENTIALS_PATH only where it imports modelscope.hub (login): both
        # name one folder here, as docs/hub.md advises.
        env["MODELSCOPE_HOME"] = env["MODELSCOPE_CREDENTIALS_PATH"]
        return env

    def test_upload_and_download_with_python_modelscope(self):
        server, token, cert = self.start_tls_server()
        work = self.path("work")
        files = {"configuration.json": b'{"framework": "pytorch"}', "empty.txt": b"",
                 "sub/dir/notes.v1.md": b"# notes\n", "sub/ünïcode.txt": "ünï\n".encode(),
                 "weights/model.safetensors": os.urandom(2 * 1024 * 1024 + 3)}
        for rel, data in files.items():
            p = os.path.join(work, "src", rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(data)
        expected = {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}

        def run(mode):
            r = subprocess.run([self.python, CLIENT, mode, token, work], capture_output=True, text=True,
                               env=self.client_env(server, cert, work, mode), timeout=300)
            self.assertEqual(r.returncode, 0, r.stderr[-4000:])
            return json.loads(r.stdout.strip().splitlines()[-1])

        result = run("main")
        self.assertTrue(result["login"])
        self.assertEqual(result["listed_models"], ["interop-model"])
        self.assertEqual(result["model_files"], {**expected, "extra/single.txt": hashlib.sha256(b"single file\n").hexdigest()})
        self.assertEqual(result["dataset_files"], expected)
        self.assertEqual(result["private_files"], {"secret.txt": hashlib.sha256(b"secret\n").hexdigest()})
        self.assertEqual(run("anonymous")["private_without_token"], "HTTPError")

        self.assertEqual(server.stop(), 0)

    def test_msdataset_loads_a_zip_dataset(self):
        """MsDataset.load of a dataset of zip archives: `datasets` reads each archive through the
        hub's resolve route (https, from MODELSCOPE_DOMAIN), downloads it into the client's cache
        and returns one row per image in it, read from the archive (`datasets` 4 reads members in
        place, `zip://MEMBER::ARCHIVE`, rather than extracting). `ms dataset` reads the same repo
        through its ModelScope dataset config."""
        server, token, cert = self.start_tls_server()
        work = self.path("work")
        images = make_zip_dataset(self.path("zipdata"))
        env = {"MODELSCOPE_ENDPOINT": server.endpoint, "MODELSCOPE_CACHE": self.path("ms-cache"),
               "MODELSCOPE_CREDENTIALS_PATH": self.path("ms-cred"), "REQUESTS_CA_BUNDLE": cert}
        r = run_ms("upload", "alice/zipdata", self.path("zipdata"), "--dataset", "--create", "--token", token,
                   env=env)
        self.assertExit(r, 0)
        self.write("csvdata/train.csv", "text,label\nbon,1\n\"a, b\",0\n")
        r = run_ms("upload", "alice/csvdata", self.path("csvdata"), "--dataset", "--create", "--token", token,
                   env=env)
        self.assertExit(r, 0)
        self.write("carded/en/train.csv", "text,label\nhi,1\nho,0\n")
        self.write("carded/en/test.csv", "text,label\nt,0\n")
        self.write("carded/zh/train.jsonl", '{"text": "x", "label": 1}\n')
        self.write("carded/README.md", "---\nconfigs:\n- config_name: en\n  data_files:\n"
                   "  - {split: train, path: en/train.csv}\n  - {split: test, path: en/test.csv}\n"
                   "- config_name: zh\n  data_files:\n  - {split: train, path: zh/train.jsonl}\n"
                   "---\n# A card\n")
        r = run_ms("upload", "alice/carded", self.path("carded"), "--dataset", "--create", "--token", token,
                   env=env)
        self.assertExit(r, 0)
        r = subprocess.run([self.python, CLIENT, "msdataset", token, work], capture_output=True, text=True,
                           env=self.client_env(server, cert, work, "msdataset"), timeout=600)
        self.assertEqual(r.returncode, 0, r.stderr[-4000:])
        got = json.loads(r.stdout.strip().splitlines()[-1])
        for split, files in images.items():
            want = sorted([label, member, hashlib.sha256(data).hexdigest()]
                          for member, (label, data) in files.items())
            rows = []
            for label, path, digest in got[split]:
                member, _, archive = path.partition("::")
                self.assertTrue(member.startswith("zip://") and archive.startswith(work + os.sep), path)
                rows.append([label, member[len("zip://"):], digest])
            self.assertEqual(sorted(rows), want)
        self.assertEqual(got["csv"], [{"text": "bon", "label": 1}, {"text": "a, b", "label": 0}])
        # The card's subsets, read by ms as MsDataset reads them.
        for subset_split in ("en/train", "en/test", "zh/train"):
            r = run_ms("dataset", "head", f"hub:alice/carded:{subset_split}", "--json", env=env)
            self.assertExit(r, 0)
            self.assertEqual([json.loads(line) for line in r.stdout.splitlines()],
                             got[f"carded {subset_split}"], subset_split)
        # ms reads the dataset config of the same repo: CSV rows with paths into its extraction.
        r = run_ms("dataset", "head", "hub:alice/zipdata", "--split", "test", "-n", "5", env=env)
        self.assertExit(r, 0)
        rows = [json.loads(line) for line in r.stdout.splitlines()]
        self.assertEqual(sorted(row["label"] for row in rows), ["cat", "dog"])
        for row in rows:
            name = next(n for n in images["test"] if row["image:FILE"].endswith("/" + n))
            with open(row["image:FILE"], "rb") as f:
                self.assertEqual(f.read(), images["test"][name][1])
        self.assertEqual(server.stop(), 0)

    def test_hub_api_surface(self):
        """HubApi beyond upload/download: each call of interop/modelscope_client.py's "apis" mode."""
        server, token, cert = self.start_tls_server()
        work = self.path("work")
        r = subprocess.run([self.python, CLIENT, "apis", token, work], capture_output=True, text=True,
                           env=self.client_env(server, cert, work, "apis"), timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr[-4000:])
        got = json.loads(r.stdout.strip().splitlines()[-1])
        top = ["README.md", "a.txt", "b.json", "sub", "sub/c.txt"]
        meta = [".mdl", ".msc", ".mv"]
        expected = {
            # The git clone of create_repo's default configuration succeeds; its push is refused
            # (and ignored by the client), so the call returns normally.
            "create_repo_default": True,
            "create_repo": True,
            "create_model_tag": True,
            "upload_file_commit": 40,
            "get_model": {"Name": "api-model", "Owner": "alice", "Visibility": 5},
            "repo_exists": [True, False, False],
            "file_exists": [True, False],
            "branches_and_tags": [["dev", "master"], ["v1.0"]],
            "list_model_revisions": ["v1.0"],
            "get_valid_revision": "v1.0",
            "get_model_files": ["README.md", "a.txt", "b.json", "later.txt", "sub"],
            "get_model_files_recursive": sorted(top + ["later.txt"]),
            "get_model_files_tag": top,
            "get_model_files_branch": sorted(top + ["dev.txt"]),
            "get_model_files_root": ["sub/c.txt"],
            "list_repo_commits": ["later", "first (batch 1/1)", "Initial commit"],
            "model_info": sorted(top + ["later.txt"]),
            "get_endpoint_for_read": True,
            "list_repos_page_2": "absent",
            "snapshot_tag": sorted(meta + ["README.md", "a.txt", "b.json", "sub/c.txt"]),
            "snapshot_branch": sorted(meta + ["README.md", "a.txt", "b.json", "dev.txt", "sub/c.txt"]),
            "snapshot_allow": sorted(meta + ["a.txt", "later.txt", "sub/c.txt"]),
            "snapshot_ignore": sorted(meta + ["b.json"]),
            "snapshot_local_dir": [".msc", ".mv", "README.md", "a.txt", "b.json", "later.txt", "sub/c.txt"],
            "model_file_download": "c\n",
            "model_file_download_tag": "a.txt",
            "model_file_download_local_dir": "later\n",
            "get_dataset": {"Name": "api-data", "Visibility": 5},
            "get_dataset_files": [".gitattributes"] + top,
            "get_dataset_files_flat": [".gitattributes", "README.md", "a.txt", "b.json", "sub"],
            "dataset_info": [".gitattributes"] + top,
            "list_repo_commits_dataset": 2,
            "list_datasets": ["alice/api-data"],
            "dataset_file_download": "c\n",
            "dataset_snapshot_allow": sorted(meta + ["sub/c.txt"]),
            "delete_files_model": ["b.json"],
            "delete_files_dataset": ["sub/c.txt"],
            "files_after_delete": [["README.md", "a.txt", "later.txt", "sub", "sub/c.txt"],
                                   [".gitattributes", "README.md", "a.txt", "b.json"]],
            "set_visibility_model": 200,
            "set_visibility_dataset": 200,
            "visibility_after": [1, 1],
            "delete_repo": [None, None, False, False],
        }
        if self.modern:
            # modelscope-hub lists .gitattributes and folders under a root, writes no .msc/.mv in
            # a snapshot, and the compat HubApi lost some methods (reported "absent").
            git = [".gitattributes"]
            expected.update({
                "file_exists": ["absent", "absent"],
                "list_model_revisions": "absent",
                "list_repo_commits": "absent",
                "model_info": "absent",
                "dataset_info": "absent",
                "list_repo_commits_dataset": "absent",
                "set_visibility_model": "absent",
                "set_visibility_dataset": "absent",
                "list_repos_page_2": [2, ["alice/api-model"]],  # oldest first: api-git, api-model
                "visibility_after": [5, 5],
                "get_model_files": git + ["README.md", "a.txt", "b.json", "later.txt", "sub", "sub/c.txt"],
                "get_model_files_recursive": git + ["README.md", "a.txt", "b.json", "later.txt", "sub", "sub/c.txt"],
                "get_model_files_tag": git + top,
                "get_model_files_branch": git + ["README.md", "a.txt", "b.json", "dev.txt", "sub", "sub/c.txt"],
                "get_model_files_root": ["sub", "sub/c.txt"],
                "snapshot_tag": git + ["README.md", "a.txt", "b.json", "sub/c.txt"],
                "snapshot_branch": git + ["README.md", "a.txt", "b.json", "dev.txt", "sub/c.txt"],
                "snapshot_allow": ["a.txt", "later.txt", "sub/c.txt"],
                "snapshot_ignore": git + ["b.json"],
                "snapshot_local_dir": git + ["README.md", "a.txt", "b.json", "later.txt", "sub/c.txt"],
                "dataset_snapshot_allow": ["sub/c.txt"],
                "files_after_delete": [git + ["README.md", "a.txt", "later.txt", "sub", "sub/c.txt"],
                                       [".gitattributes", "README.md", "a.txt", "b.json"]],
            })
        wrong = {name: got.get(name) for name, want in expected.items() if got.get(name) != want}
        self.maxDiff = None
        self.assertEqual(wrong, {}, "calls whose result differs from the expected one")
        # A missing repo or file is the client's own "does not exist" error, not a crash.
        self.assertIn("alice/absent does not exist", got["get_model_missing"]["error"])
        missing = got["model_file_download_missing"]["error"]
        self.assertIn("E3020" if self.modern else "NotExistError", missing)  # 1.38+ wraps it in HTTPError
        self.assertIn("absent.txt", missing)
        self.assertEqual(server.stop(), 0)

    def test_modelscope_cli(self):
        """The `modelscope` command line: login, create, upload, download (models and datasets)."""
        cli = os.path.join(os.path.dirname(self.python), "modelscope")
        if not os.path.exists(cli):
            self.skipTest(f"{cli} is absent")
        server, token, cert = self.start_tls_server()
        work = self.path("work")
        env = self.client_env(server, cert, work, "cli")
        src = os.path.join(work, "up")
        for rel, data in {"a.txt": "a\n", "sub/b.txt": "b\n", "config.json": "{}"}.items():
            os.makedirs(os.path.dirname(os.path.join(src, rel)), exist_ok=True)
            with open(os.path.join(src, rel), "w") as f:
                f.write(data)

        def modelscope(*args):
            r = subprocess.run([cli, *args], capture_output=True, text=True, env=env, timeout=120,
                               cwd=work)
            self.assertEqual(r.returncode, 0, f"modelscope {' '.join(args)}:\n{r.stdout[-2000:]}{r.stderr[-3000:]}")
            return r

        def files(folder):
            out = []
            for base, dirs, names in os.walk(folder):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                out += [os.path.relpath(os.path.join(base, n), folder) for n in names if not n.startswith(".")]
            return sorted(out)

        modelscope("login", "--token", token)
        # git-clones the new repo (default configuration); 1.38+ needs the type named
        modelscope("create", "alice/cli-model", "--repo_type", "model")
        modelscope("create", "alice/cli-data", "--repo_type", "dataset")
        modelscope("upload", "alice/cli-model", src, "--commit-message", "from the cli")
        modelscope("upload", "alice/cli-model", os.path.join(src, "a.txt"), "renamed.txt")
        modelscope("upload", "alice/cli-data", src, "--repo-type", "dataset")

        d = lambda name: os.path.join(work, name)  # noqa: E731
        modelscope("download", "--model", "alice/cli-model", "--local_dir", d("all"))
        self.assertEqual(files(d("all")), ["a.txt", "config.json", "renamed.txt", "sub/b.txt"])
        modelscope("download", "--model", "alice/cli-model", "sub/b.txt", "--local_dir", d("one"))
        self.assertEqual(files(d("one")), ["sub/b.txt"])
        modelscope("download", "--model", "alice/cli-model", "a.txt", "config.json", "--local_dir", d("two"))
        self.assertEqual(files(d("two")), ["a.txt", "config.json"])
        modelscope("download", "--model", "alice/cli-model", "--include", "*.txt", "--exclude", "sub/*",
                   "--local_dir", d("filtered"))
        self.assertEqual(files(d("filtered")), ["a.txt", "renamed.txt"])
        modelscope("download", "--model", "alice/cli-model", "--revision", "master", "--cache_dir", d("cache"))
        cached = (os.path.join(d("cache"), "models", "alice--cli-model", "snapshots", "master") if self.modern
                  else os.path.join(d("cache"), "alice", "cli-model"))
        self.assertEqual(files(cached), ["a.txt", "config.json", "renamed.txt", "sub/b.txt"])
        modelscope("download", "--dataset", "alice/cli-data", "--local_dir", d("data"))
        self.assertEqual(files(d("data")), ["a.txt", "config.json", "sub/b.txt"])
        modelscope("download", "--dataset", "alice/cli-data", "sub/b.txt", "--local_dir", d("data1"))
        self.assertEqual(files(d("data1")), ["sub/b.txt"])
        self.assertEqual(server.stop(), 0)


for _version, _python in (modelscope_pythons() or {None: None}).items():
    _name = "ModelscopeInterop_" + (_version or "absent").replace(".", "_")
    globals()[_name] = type(_name, (InteropScenarios, MsTestCase), {"version": _version, "python": _python})


if __name__ == "__main__":
    unittest.main()
