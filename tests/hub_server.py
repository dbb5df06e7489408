"""A loopback Hugging Face Hub for push/pull tests: the part of the Hub's HTTP API that huggingface_hub
(with `HF_HUB_DISABLE_XET=1`), transformers and datasets use, for model, dataset and Space repos.

Served: create repo, README metadata validation, preupload (regular vs LFS), the LFS batch API with
its upload and verify actions, ndjson commits (regular and LFS files, parent-commit check), repo
info, tree listings, and HEAD/GET on `/{repo}/resolve/{revision}/{path}` with the headers
huggingface_hub reads (X-Repo-Commit, ETag, Content-Length, X-Linked-Etag/X-Linked-Size for LFS
files, X-Error-Code on misses).

One branch (`main`) plus every commit as a revision; state lives in memory; writes only check that
a token was sent. Requests the server does not know are answered 404 and listed in `unknown`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

USER = "test-user"
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".parquet", ".arrow", ".png", ".jpg", ".onnx")
LFS_MIN_SIZE = 1_000_000
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
PREFIX_TYPES = {None: "model", "datasets/": "dataset", "spaces/": "space"}


def git_blob_sha1(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool = False
    sdk: str | None = None  # a Space's
    # commit sha -> {path: (content, is_lfs)}; the last commit is `main`.
    snapshots: dict[str, dict[str, tuple[bytes, bool]]] = field(default_factory=dict)
    head: str = ""

    def commit(self, files: dict[str, tuple[bytes, bool]], summary: str) -> str:
        sha = hashlib.sha1(f"{self.repo_type}/{self.repo_id}/{len(self.snapshots)}/{summary}".encode()).hexdigest()
        self.snapshots[sha] = files
        self.head = sha
        return sha


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, commit: str | None = None,
                 **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.commit, self.extra = status, code, commit, extra


class LoopbackHub:
    """`with LoopbackHub() as hub:` serves on `hub.url` from a daemon thread."""

    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.unknown: list[str] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "LoopbackHub":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def files(self, repo_id: str, repo_type: str = "model") -> dict[str, bytes]:
        repo = self.repos[(repo_type, repo_id)]
        return {path: content for path, (content, _) in repo.snapshots[repo.head].items()}

    # -- the API ----------------------------------------------------------------------------------

    def repo(self, repo_type: str, repo_id: str) -> Repo:
        try:
            return self.repos[(repo_type, repo_id)]
        except KeyError:
            raise HubError(404, f"Repository {repo_type}s/{repo_id} not found", "RepoNotFound") from None

    def snapshot(self, repo: Repo, revision: str) -> tuple[str, dict[str, tuple[bytes, bool]]]:
        sha = repo.head if revision == "main" else revision
        if sha not in repo.snapshots:
            raise HubError(404, f"Revision {revision} not found", "RevisionNotFound")
        return sha, repo.snapshots[sha]

    def repo_url(self, repo: Repo) -> str:
        return f"{self.url}/{URL_PREFIX[repo.repo_type]}{repo.repo_id}"

    def create_repo(self, body: dict[str, Any]) -> dict[str, Any]:
        repo_type = body.get("type") or "model"
        repo_id = f"{body.get('organization') or USER}/{body['name']}"
        if (repo_type, repo_id) in self.repos:
            # The Hub names the existing repo: create_repo(exist_ok=True) returns its URL.
            raise HubError(409, "You already created this repo", url=self.repo_url(self.repos[(repo_type, repo_id)]))
        repo = Repo(repo_type, repo_id, private=body.get("visibility") == "private" or bool(body.get("private")),
                    sdk=body.get("sdk"))
        repo.commit({".gitattributes": (b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n", False)}, "initial commit")
        self.repos[(repo_type, repo_id)] = repo
        return {"url": self.repo_url(repo), "name": repo_id}

    def info(self, repo: Repo, revision: str) -> dict[str, Any]:
        sha, files = self.snapshot(repo, revision)
        return {
            "id": repo.repo_id, "sha": sha, "private": repo.private, "tags": [],
            "lastModified": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
            "siblings": [{"rfilename": path, "size": len(content), "blobId": git_blob_sha1(content)}
                         for path, (content, _) in sorted(files.items())],
        }

    def preupload(self, repo: Repo, body: dict[str, Any]) -> dict[str, Any]:
        modes = []
        for entry in body["files"]:
            lfs = entry["path"].endswith(LFS_SUFFIXES) or entry["size"] >= LFS_MIN_SIZE
            modes.append({"path": entry["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False})
        return {"files": modes}

    def lfs_batch(self, body: dict[str, Any]) -> dict[str, Any]:
        objects = []
        for entry in body["objects"]:
            action = {"oid": entry["oid"], "size": entry["size"]}
            if entry["oid"] not in self.lfs_objects:
                action["actions"] = {
                    "upload": {"href": f"{self.url}/_lfs/{entry['oid']}"},
                    "verify": {"href": f"{self.url}/_lfs/{entry['oid']}/verify"},
                }
            objects.append(action)
        return {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}

    def lfs_upload(self, oid: str, content: bytes) -> None:
        if hashlib.sha256(content).hexdigest() != oid:
            raise HubError(400, f"LFS upload of {oid}: content does not hash to its oid")
        self.lfs_objects[oid] = content

    def commit(self, repo: Repo, revision: str, lines: list[dict[str, Any]]) -> dict[str, Any]:
        head, files = self.snapshot(repo, revision)
        files = dict(files)
        header = lines[0]["value"]
        if header.get("parentCommit") not in (None, head):
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            if key == "file":
                files[value["path"]] = (base64.b64decode(value["content"]), False)
            elif key == "lfsFile":
                if value["oid"] not in self.lfs_objects:
                    raise HubError(400, f"LFS object {value['oid']} of {value['path']} was never uploaded")
                files[value["path"]] = (self.lfs_objects[value["oid"]], True)
            else:
                raise HubError(400, f"unknown commit operation {key!r}")
        sha = repo.commit(files, header["summary"])
        return {"commitUrl": f"{self.repo_url(repo)}/commit/{sha}", "commitOid": sha, "pullRequestUrl": None}

    @staticmethod
    def entry(path: str, files: dict[str, tuple[bytes, bool]]) -> dict[str, Any] | None:
        if path in files:
            content, lfs = files[path]
            item = {"type": "file", "path": path, "size": len(content), "oid": git_blob_sha1(content)}
            if lfs:
                item["lfs"] = {"oid": hashlib.sha256(content).hexdigest(), "size": len(content), "pointerSize": 134}
            return item
        if any(name.startswith(path + "/") for name in files):
            return {"type": "directory", "path": path, "oid": hashlib.sha1(path.encode()).hexdigest()}
        return None

    def tree(self, repo: Repo, revision: str, path: str, recursive: bool) -> list[dict[str, Any]]:
        sha, files = self.snapshot(repo, revision)
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        if prefix and self.entry(prefix.rstrip("/"), files) is None:
            raise HubError(404, f"{path} not found at {revision}", "EntryNotFound", sha)
        names: set[str] = set()
        for name in files:
            if not name.startswith(prefix):
                continue
            parts = name[len(prefix):].split("/")
            depth = len(parts) if recursive else 1
            names.update(prefix + "/".join(parts[:level]) for level in range(1, depth + 1))
        return [self.entry(name, files) for name in sorted(names)]

    def resolve(self, repo: Repo, revision: str, path: str) -> tuple[bytes, dict[str, str]]:
        sha, files = self.snapshot(repo, revision)
        if path not in files:
            raise HubError(404, f"{path} not found at {revision}", "EntryNotFound", sha)
        content, lfs = files[path]
        headers = {"X-Repo-Commit": sha, "ETag": f'"{git_blob_sha1(content)}"'}
        if lfs:
            headers.update({"ETag": f'"{hashlib.sha256(content).hexdigest()}"',
                            "X-Linked-Etag": f'"{hashlib.sha256(content).hexdigest()}"',
                            "X-Linked-Size": str(len(content))})
        return content, headers


API_REPO = re.compile(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+)(?:/(preupload|commit|tree|revision)/([^/]+)(/.*)?)?$")
LFS_BATCH = re.compile(r"^/(datasets/|spaces/)?([^/]+/[^/]+)\.git/info/lfs/objects/batch$")
RESOLVE = re.compile(r"^/(datasets/|spaces/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
LFS_OBJECT = re.compile(r"^/_lfs/([0-9a-f]{64})(/verify)?$")


def _handler_for(hub: LoopbackHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the Hub: every answer carries Content-Length

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the tests read `hub.unknown` instead

        def body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def send(self, status: int, payload: bytes = b"", headers: dict[str, str] | None = None,
                 content_type: str = "application/json") -> None:
            self.send_response(status)
            for key, value in {"Content-Type": content_type, **(headers or {})}.items():
                self.send_header(key, value)
            if "Content-Length" not in (headers or {}):
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def answer(self, status: int, value: Any) -> None:
            self.send(status, json.dumps(value).encode())

        def handle_any(self) -> None:
            url = urlsplit(self.path)
            path, query = unquote(url.path), parse_qs(url.query)
            body = self.body() if self.command in ("POST", "PUT") else b""
            try:
                with hub.lock:
                    self.route(path, query, body)
            except HubError as error:
                headers = {"X-Error-Message": str(error)}
                if error.code:
                    headers["X-Error-Code"] = error.code
                if error.commit:
                    headers["X-Repo-Commit"] = error.commit
                self.send(error.status, json.dumps({"error": str(error), **error.extra}).encode(), headers)

        def route(self, path: str, query: dict[str, list[str]], body: bytes) -> None:
            method = self.command
            if method == "POST" and path == "/api/repos/create":
                return self.answer(200, hub.create_repo(json.loads(body)))
            if method == "POST" and path == "/api/validate-yaml":
                return self.answer(200, {})
            if match := LFS_BATCH.match(path):
                hub.repo(PREFIX_TYPES[match[1]], match[2])
                return self.answer(200, hub.lfs_batch(json.loads(body)))
            if match := LFS_OBJECT.match(path):
                if method == "PUT":
                    hub.lfs_upload(match[1], body)
                return self.answer(200, {})
            if method in ("GET", "HEAD") and (match := RESOLVE.match(path)):
                content, headers = hub.resolve(hub.repo(PREFIX_TYPES[match[1]], match[2]), match[3], match[4])
                return self.send(200, content, headers, "application/octet-stream")
            if match := API_REPO.match(path):
                repo = hub.repo(REPO_TYPES[match[1]], match[2])
                action, revision, rest = match[3], match[4] or "main", (match[5] or "").lstrip("/")
                if method == "GET" and action in (None, "revision"):
                    return self.answer(200, hub.info(repo, revision))
                if method == "POST" and action == "preupload":
                    return self.answer(200, hub.preupload(repo, json.loads(body)))
                if method == "POST" and action == "commit":
                    lines = [json.loads(line) for line in body.splitlines() if line.strip()]
                    return self.answer(200, hub.commit(repo, revision, lines))
                if method == "GET" and action == "tree":
                    recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
                    return self.answer(200, hub.tree(repo, revision, rest, recursive))
            hub.unknown.append(f"{method} {self.path}")
            raise HubError(404, f"{method} {self.path} is not served by the loopback hub")

        do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = handle_any

    return Handler

