"""A Hugging Face Hub API server on 127.0.0.1, written with the standard library, that the real `huggingface_hub`
client (and transformers through it) can push to and download from in tests.

It speaks the routes that huggingface_hub 2.4 calls for creating repos, committing files and downloading them (read
from its source: `hf_api.py`, `_commit_api.py`, `file_download.py`, `_snapshot_download.py`):

    GET  /api/whoami-v2
    POST /api/repos/create                       409 when the repo exists (the client turns it into exist_ok)
    POST /api/validate-yaml                      README.md front matter check before every upload of a README
    GET  /api/{type}s/{ns}/{name}[/revision/{rev}]   repo info: sha, siblings, private, sdk
    POST /api/{type}s/{ns}/{name}/preupload/{rev}    answers "regular" for every file (content comes inline)
    POST /api/{type}s/{ns}/{name}/commit/{rev}       NDJSON: header, file (base64), deletedFile, deletedFolder
    GET  /api/{type}s/{ns}/{name}/tree/{rev}[/{path}]  ?recursive=true; 404 EntryNotFound for a missing folder
    POST /api/{type}s/{ns}/{name}/paths-info/{rev}   form or JSON `paths`
    GET  /api/{type}s/{ns}/{name}/refs, /commits/{rev};  POST .../branch/{branch}
    GET/POST/DELETE /api/spaces/{ns}/{name}/variables
    HEAD/GET /[{type}s/]{ns}/{name}/resolve/{rev}/{path}   X-Repo-Commit, ETag, Content-Length, Range

Decisions:
- **Inline files only.** Preupload answers `"regular"` for every file, so the client sends each file base64-encoded in
  the commit body: no LFS and no Xet round trips. (With `hf_xet` installed, `upload_folder` takes its pipelined
  path, which then commits inline too; checked with hf_xet 1.8. The tests set `HF_HUB_DISABLE_XET=1` regardless.)
  Preupload also returns the `oid` of a file already at that path, so the client skips unchanged files, as on the
  Hub.
- **Storage is git-like.** Blobs are stored once, named by their git blob sha1 (which is also the file's `ETag` and
  tree `oid`, as on the Hub for non-LFS files); each commit is a JSON record (parents, message, date, the whole tree
  as `{path: {oid, size}}`) named by the sha1 of that record: 40 hex digits. A revision is a branch name or a full
  commit sha; every old commit stays readable. A new repo gets the Hub's "initial commit" with `.gitattributes`.
- **Errors speak the client's language.** 404s carry `X-Error-Code` (`RepoNotFound`, `RevisionNotFound`,
  `EntryNotFound`), which huggingface_hub maps to its exception classes; a missing file's 404 also carries
  `X-Repo-Commit` (the client caches the absence per commit).
- **Tokens.** `tokens` maps bearer tokens to user names, `orgs` user names to their organisations. Every write route
  needs a valid `Authorization: Bearer <token>` (401 otherwise) and a namespace of that user (403 otherwise). Public
  repos are readable without a token; private ones only by their namespace's members (404 RepoNotFound otherwise).
- **What it does not do:** LFS/Xet uploads, pull requests, tags, pagination (every listing is one page), `expand`
  fields, the Hub's schema validation of card metadata (validate-yaml checks only that the front matter block is
  closed and, for Spaces, that it names an `sdk`).
- `server.requests` logs every request (method, path, whether it carried a token) so that a test can assert what
  reached the server, e.g. nothing at all; `server.unhandled` lists requests no route matched.

    with HubServer(tmp_path / "hub", tokens={"hf_test": "alice"}) as hub:   # port 0: a free port
        ...  # HF_ENDPOINT=hub.url

`python tests/hub_server.py --port 8080 --token hf_test=alice` runs it by hand.
"""

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
SPACE_SDKS = ("gradio", "streamlit", "docker", "static")
COMMIT_SHA = re.compile(r"[0-9a-f]{40}")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in ("*.bin", "*.h5", "*.onnx", "*.pt", "*.pth", "*.safetensors", "*.msgpack", "*.zip", "*tfevents*")
)


def git_blob_sha1(data: bytes) -> str:
    """The id git gives a blob (`git hash-object`): what the Hub reports as `oid` and `ETag` of a non-LFS file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


class HubError(Exception):
    """An HTTP error answer: status, message and the optional `X-Error-Code` the client maps to an exception."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None,
                 body: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}
        self.body = body or {}  # more fields of the JSON answer


@dataclass
class RequestRecord:
    method: str
    path: str
    authorized: bool  # carried an Authorization header


class HubStore:
    """Repos, commits and blobs under `root` (a folder the caller owns, e.g. a pytest tmp_path)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        for name in ("blobs", "commits", "repos"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()  # one writer at a time: ref updates must not interleave

    # --- low level ---------------------------------------------------------------------------------------------
    def _repo_file(self, repo_type: str, repo_id: str) -> Path:
        return self.root / "repos" / repo_type / f"{repo_id}.json"

    def put_blob(self, data: bytes) -> str:
        oid = git_blob_sha1(data)
        path = self.root / "blobs" / oid
        if not path.exists():
            path.write_bytes(data)
        return oid

    def blob_path(self, oid: str) -> Path:
        return self.root / "blobs" / oid

    def commit(self, sha: str) -> dict:
        return json.loads((self.root / "commits" / f"{sha}.json").read_text())

    def write_commit(self, record: dict) -> str:
        body = json.dumps(record, sort_keys=True).encode()
        sha = hashlib.sha1(b"commit %d\0" % len(body) + body).hexdigest()
        (self.root / "commits" / f"{sha}.json").write_bytes(body)
        return sha

    # --- repos -------------------------------------------------------------------------------------------------
    def repo(self, repo_type: str, repo_id: str) -> dict | None:
        path = self._repo_file(repo_type, repo_id)
        return json.loads(path.read_text()) if path.exists() else None

    def save_repo(self, repo: dict) -> None:
        path = self._repo_file(repo["type"], repo["id"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(repo, indent=1))

    def create_repo(self, repo_type: str, repo_id: str, *, private: bool, sdk: str | None, author: str) -> dict:
        with self.lock:
            if self.repo(repo_type, repo_id) is not None:
                raise HubError(409, f"You already created this {repo_type} repo: {repo_id}")
            tree = {".gitattributes": {"oid": self.put_blob(GITATTRIBUTES.encode()), "size": len(GITATTRIBUTES)}}
            date = now_iso()
            sha = self.write_commit({"parents": [], "title": "initial commit", "message": "", "date": date,
                                     "authors": ["system"], "tree": tree})
            repo = {"type": repo_type, "id": repo_id, "private": private, "sdk": sdk, "createdAt": date,
                    "author": author, "refs": {"main": sha}, "variables": {}}
            self.save_repo(repo)
            return repo

    def delete_repo(self, repo_type: str, repo_id: str) -> None:
        with self.lock:
            path = self._repo_file(repo_type, repo_id)
            if not path.exists():
                raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
            path.unlink()

    def resolve(self, repo: dict, revision: str) -> str:
        """Branch name or full commit sha -> commit sha (404 RevisionNotFound otherwise)."""
        if revision in repo["refs"]:
            return repo["refs"][revision]
        if COMMIT_SHA.fullmatch(revision) and (self.root / "commits" / f"{revision}.json").exists():
            if revision in self.history(repo):
                return revision
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def history(self, repo: dict, start: str | None = None) -> list[str]:
        """Commit shas reachable from `start` (default: every branch head), newest first."""
        pending = [start] if start else list(repo["refs"].values())
        seen: dict[str, str] = {}
        while pending:
            sha = pending.pop()
            if sha in seen:
                continue
            record = self.commit(sha)
            seen[sha] = record["date"]
            pending.extend(record["parents"])
        return sorted(seen, key=seen.get, reverse=True)

    def apply_commit(self, repo: dict, branch: str, header: dict, operations: list[tuple[str, str, bytes | None]],
                     author: str) -> str:
        """Add/delete files on top of `branch`; returns the new commit's sha."""
        with self.lock:
            repo = self.repo(repo["type"], repo["id"])  # re-read under the lock: another commit may have landed
            if branch not in repo["refs"]:
                raise HubError(404, f"Invalid rev id: {branch} (commits go to a branch)", "RevisionNotFound")
            head = repo["refs"][branch]
            parent = header.get("parentCommit")
            if parent is not None and parent != head:
                raise HubError(412, f"A commit has happened since {parent}: the head of {branch} is {head}")
            tree = dict(self.commit(head)["tree"])
            for kind, path, data in operations:
                if kind == "file":
                    tree[path] = {"oid": self.put_blob(data), "size": len(data)}
                elif kind == "deletedFile":
                    if path not in tree:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                    del tree[path]
                elif kind == "deletedFolder":
                    prefix = path.rstrip("/") + "/"
                    removed = [p for p in tree if p.startswith(prefix)]
                    if not removed:
                        raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                    for p in removed:
                        del tree[p]
            sha = self.write_commit({
                "parents": [head], "title": header.get("summary") or "", "message": header.get("description") or "",
                "date": now_iso(), "authors": [author], "tree": tree,
            })
            repo["refs"][branch] = sha
            self.save_repo(repo)
            return sha

    def create_branch(self, repo: dict, branch: str, starting_point: str | None) -> None:
        with self.lock:
            repo = self.repo(repo["type"], repo["id"])
            if branch in repo["refs"]:
                raise HubError(409, f"Reference already exists: refs/heads/{branch}")
            repo["refs"][branch] = self.resolve(repo, starting_point or "main")
            self.save_repo(repo)


def tree_entries(tree: dict, folder: str, recursive: bool) -> list[dict]:
    """Hub tree listing of `folder` ("" = root): files and folders, direct children or everything below."""
    prefix = folder.strip("/") + "/" if folder.strip("/") else ""
    files = {p: info for p, info in tree.items() if p.startswith(prefix)}
    entries: dict[str, dict] = {}
    for path, info in files.items():
        rest = path[len(prefix):].split("/")
        # folders on the way to the file
        for depth in range(1, len(rest)):
            if depth > 1 and not recursive:
                break
            sub = prefix + "/".join(rest[:depth])
            entries.setdefault(sub, {"type": "directory", "path": sub, "oid": folder_oid(tree, sub)})
        if recursive or len(rest) == 1:
            entries[path] = {"type": "file", "path": path, "oid": info["oid"], "size": info["size"]}
    return [entries[p] for p in sorted(entries)]


def folder_oid(tree: dict, folder: str) -> str:
    prefix = folder + "/"
    listing = "".join(f"{p}\0{i['oid']}\n" for p, i in sorted(tree.items()) if p.startswith(prefix))
    return hashlib.sha1(listing.encode()).hexdigest()


def valid_path(path: str) -> bool:
    parts = path.split("/")
    return bool(path) and not path.startswith("/") and all(part not in ("", ".", "..") for part in parts)


def check_front_matter(content: str, repo_type: str) -> list[str]:
    """The errors validate-yaml reports: an unclosed front matter block; a Space card without `sdk`."""
    lines = content.replace("\r\n", "\n").split("\n")
    if not lines or lines[0].strip() != "---":
        return ["Spaces need YAML metadata with an sdk (README.md has none)"] if repo_type == "space" else []
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        return ["The YAML metadata block of README.md is not closed by a '---' line"]
    if repo_type == "space" and not any(re.match(r"sdk:\s*\S", line) for line in lines[1:end]):
        return ["A Space's README.md metadata must set `sdk` (gradio, streamlit, docker or static)"]
    return []


class HubRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client expects; every answer sets Content-Length
    server: "_Server"

    def log_message(self, format, *args):  # quiet: tests read `HubServer.requests` instead
        pass

    # --- plumbing ----------------------------------------------------------------------------------------------
    def do_GET(self):
        self._handle("GET")

    def do_HEAD(self):
        self._handle("HEAD")

    def do_POST(self):
        self._handle("POST")

    def do_DELETE(self):
        self._handle("DELETE")

    def _handle(self, method: str):
        hub = self.server.hub
        url = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.body = self._read_body()
        hub.record(RequestRecord(method, self.path, "Authorization" in self.headers))
        try:
            for pattern, methods, handler in ROUTES:
                match = pattern.fullmatch(url.path)
                if match and method in methods:
                    handler(self, method, *[unquote(g) if g is not None else None for g in match.groups()])
                    return
            hub.unhandled.append(RequestRecord(method, self.path, "Authorization" in self.headers))
            raise HubError(404, f"No route for {method} {url.path} on this loopback Hub")
        except HubError as error:
            headers = {"X-Error-Message": error.message, **error.headers}
            if error.code:
                headers["X-Error-Code"] = error.code
            self.send_json({"error": error.message, **error.body}, status=error.status, headers=headers)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_json(self, value, status: int = 200, headers: dict | None = None):
        data = json.dumps(value).encode()
        self.send_bytes(data, status, {"Content-Type": "application/json", **(headers or {})})

    def send_bytes(self, data: bytes, status: int = 200, headers: dict | None = None, *, length: int | None = None):
        self.send_response(status)
        for key, value in (headers or {}).items():
            # header values must be latin-1; percent-encode anything else (e.g. a file name in a message)
            self.send_header(key, quote(str(value), safe=" !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"))
        self.send_header("Content-Length", str(len(data) if length is None else length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def json_body(self) -> dict:
        try:
            return json.loads(self.body or b"{}")
        except json.JSONDecodeError as error:
            raise HubError(400, f"Body is not JSON: {error}") from None

    # --- auth and lookup ---------------------------------------------------------------------------------------
    def user(self) -> str | None:
        header = self.headers.get("Authorization")
        if header is None:
            return None
        token = header.removeprefix("Bearer ").strip()
        user = self.server.hub.tokens.get(token)
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return user

    def writer(self, namespace: str) -> str:
        """The user behind the token, who must own `namespace` (or belong to that organisation)."""
        user = self.user()
        if user is None:
            # The client turns this exact message into a plain 401 error (anything else reads as "repo not found").
            raise HubError(401, "Invalid credentials in Authorization header")
        if namespace != user and namespace not in self.server.hub.orgs.get(user, []):
            raise HubError(403, f"You don't have the rights to write to {namespace}: {user} is not a member")
        return user

    def find_repo(self, type_segment: str | None, namespace: str, name: str) -> dict:
        repo_type = REPO_TYPES[type_segment] if type_segment else "model"
        repo_id = f"{namespace}/{name}"
        repo = self.server.hub.store.repo(repo_type, repo_id)
        if repo is not None and repo["private"]:
            user = self.user()
            if user is None or (namespace != user and namespace not in self.server.hub.orgs.get(user, [])):
                repo = None
        if repo is None:
            raise HubError(404, f"Repository not found: {repo_type} {repo_id}", "RepoNotFound")
        return repo

    def repo_url(self, repo: dict) -> str:
        return f"{self.server.hub.url}/{URL_PREFIXES[repo['type']]}{repo['id']}"

    # --- routes ------------------------------------------------------------------------------------------------
    def whoami(self, method):
        user = self.user()
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        orgs = [{"type": "org", "name": org} for org in self.server.hub.orgs.get(user, [])]
        self.send_json({"type": "user", "id": hashlib.sha1(user.encode()).hexdigest()[:24], "name": user,
                        "fullname": user, "orgs": orgs,
                        "auth": {"type": "access_token", "accessToken": {"displayName": "loopback", "role": "write"}}})

    def create(self, method):
        body = self.json_body()
        repo_type = body.get("type") or "model"
        if repo_type not in URL_PREFIXES:
            raise HubError(400, f"Unknown repo type {repo_type!r}")
        user = self.user()
        namespace = body.get("organization") or user
        if namespace is None:  # no token: the Hub cannot know the namespace either
            raise HubError(401, "Invalid credentials in Authorization header")
        self.writer(namespace)
        name = body.get("name") or ""
        if not NAME.fullmatch(name) or not NAME.fullmatch(namespace):
            raise HubError(400, f"Invalid repo name {namespace}/{name}")
        sdk = body.get("sdk")
        if repo_type == "space" and sdk not in SPACE_SDKS:
            raise HubError(400, f"A Space needs an sdk among {SPACE_SDKS}, got {sdk!r}")
        private = body.get("private") is True or body.get("visibility") == "private"
        repo_id = f"{namespace}/{name}"
        try:
            repo = self.server.hub.store.create_repo(repo_type, repo_id, private=private,
                                                     sdk=sdk if repo_type == "space" else None, author=namespace)
        except HubError as error:
            # the client reads the url of the existing repo from the 409 answer (create_repo(exist_ok=True))
            error.body["url"] = f"{self.server.hub.url}/{URL_PREFIXES[repo_type]}{repo_id}"
            raise
        for variable in body.get("variables") or []:
            repo["variables"][variable["key"]] = {"value": variable["value"],
                                                  "description": variable.get("description"), "updatedAt": now_iso()}
        self.server.hub.store.save_repo(repo)
        self.send_json({"url": self.repo_url(repo), "name": repo["id"], "id": repo["id"]})

    def delete(self, method):
        body = self.json_body()
        namespace = body.get("organization") or self.user()
        self.writer(namespace)
        self.server.hub.store.delete_repo(body.get("type") or "model", f"{namespace}/{body.get('name')}")
        self.send_json({})

    def validate_yaml(self, method):
        body = self.json_body()
        errors = check_front_matter(body.get("content", ""), body.get("repoType") or "model")
        if errors:
            self.send_json({"errors": [{"message": e} for e in errors]}, status=400)
        else:
            self.send_json({"warnings": []})

    def info(self, method, type_segment, namespace, name, revision):
        repo = self.find_repo(type_segment, namespace, name)
        store = self.server.hub.store
        sha = store.resolve(repo, revision or "main")
        record = store.commit(sha)
        blobs = self.query.get("blobs", "").lower() in ("1", "true")
        siblings = [
            {"rfilename": p, **({"size": i["size"], "blobId": i["oid"]} if blobs else {})}
            for p, i in sorted(record["tree"].items())
        ]
        info = {"_id": hashlib.sha1(repo["id"].encode()).hexdigest()[:24], "id": repo["id"], "author": repo["author"],
                "sha": sha, "lastModified": record["date"], "createdAt": repo["createdAt"], "private": repo["private"],
                "disabled": False, "gated": False, "likes": 0, "tags": [], "siblings": siblings,
                "usedStorage": sum(i["size"] for i in record["tree"].values())}
        if repo["type"] == "model":
            info.update(modelId=repo["id"], downloads=0)
        if repo["type"] == "space":
            info.update(sdk=repo["sdk"], runtime={"stage": "NO_APP_FILE" if "app.py" not in record["tree"]
                                                  else "BUILDING", "hardware": {"current": None, "requested": None}})
        self.send_json(info)

    def preupload(self, method, type_segment, namespace, name, revision):
        repo = self.find_repo(type_segment, namespace, name)
        self.writer(namespace)
        if "create_pr" in self.query:
            raise HubError(400, "Pull requests are not supported by this loopback Hub")
        store = self.server.hub.store
        if revision not in repo["refs"]:
            raise HubError(404, f"Invalid rev id: {revision} (uploads go to a branch)", "RevisionNotFound")
        tree = store.commit(repo["refs"][revision])["tree"]
        files = self.json_body().get("files") or []
        self.send_json({
            "files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                       "oid": tree.get(f["path"], {}).get("oid")} for f in files],
            "commitOid": repo["refs"][revision],
        })

    def commit(self, method, type_segment, namespace, name, revision):
        repo = self.find_repo(type_segment, namespace, name)
        author = self.writer(namespace)
        if "create_pr" in self.query:
            raise HubError(400, "Pull requests are not supported by this loopback Hub")
        header, operations = None, []
        for number, line in enumerate(self.body.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                key, value = item["key"], item["value"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise HubError(400, f"NDJSON line {number} is not a {{key, value}} object") from None
            if key == "header":
                header = value
                continue
            path = value.get("path", "")
            if not valid_path(path.rstrip("/") if key == "deletedFolder" else path):
                raise HubError(400, f"Invalid path in repo: {path!r}")
            if key == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, f"{path}: only base64-encoded inline files are supported")
                operations.append(("file", path, base64.b64decode(value["content"])))
            elif key in ("deletedFile", "deletedFolder"):
                operations.append((key, path, None))
            elif key == "lfsFile":
                raise HubError(400, f"{path}: LFS files are not supported here (preupload answered 'regular')")
            else:
                raise HubError(400, f"Unknown commit operation {key!r}")
        if header is None:
            raise HubError(400, "The commit has no header line")
        sha = self.server.hub.store.apply_commit(repo, revision, header, operations, author)
        self.send_json({"success": True, "commitOid": sha, "commitUrl": f"{self.repo_url(repo)}/commit/{sha}",
                        "hookOutput": ""})

    def tree(self, method, type_segment, namespace, name, revision, path):
        repo = self.find_repo(type_segment, namespace, name)
        store = self.server.hub.store
        tree = store.commit(store.resolve(repo, revision))["tree"]
        folder = (path or "").strip("/")
        if folder and not any(p.startswith(folder + "/") for p in tree):
            raise HubError(404, f"Entry not found: {folder}", "EntryNotFound")
        recursive = self.query.get("recursive", "").lower() in ("1", "true")
        self.send_json(tree_entries(tree, folder, recursive))

    def paths_info(self, method, type_segment, namespace, name, revision):
        repo = self.find_repo(type_segment, namespace, name)
        store = self.server.hub.store
        tree = store.commit(store.resolve(repo, revision))["tree"]
        if self.headers.get("Content-Type", "").startswith("application/json"):
            paths = self.json_body().get("paths") or []
        else:
            paths = parse_qs(self.body.decode()).get("paths", [])
        answer = []
        for path in paths if isinstance(paths, list) else [paths]:
            path = path.strip("/")
            if path in tree:
                answer.append({"type": "file", "path": path, "oid": tree[path]["oid"], "size": tree[path]["size"]})
            elif any(p.startswith(path + "/") for p in tree):
                answer.append({"type": "directory", "path": path, "oid": folder_oid(tree, path)})
        self.send_json(answer)

    def refs(self, method, type_segment, namespace, name):
        repo = self.find_repo(type_segment, namespace, name)
        branches = [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": sha} for b, sha in repo["refs"].items()]
        self.send_json({"branches": branches, "converts": [], "tags": [], "pullRequests": []})

    def commits(self, method, type_segment, namespace, name, revision):
        repo = self.find_repo(type_segment, namespace, name)
        store = self.server.hub.store
        answer = []
        for sha in store.history(repo, store.resolve(repo, revision)):
            record = store.commit(sha)
            answer.append({"id": sha, "title": record["title"], "message": record["message"], "date": record["date"],
                           "authors": [{"user": a} for a in record["authors"]]})
        self.send_json(answer)

    def branch(self, method, type_segment, namespace, name, branch):
        repo = self.find_repo(type_segment, namespace, name)
        self.writer(namespace)
        if not re.fullmatch(r"[A-Za-z0-9._/-]+", branch) or COMMIT_SHA.fullmatch(branch):
            raise HubError(400, f"Invalid branch name {branch!r}")
        self.server.hub.store.create_branch(repo, branch, self.json_body().get("startingPoint"))
        self.send_json({})

    def variables(self, method, namespace, name):
        repo = self.find_repo("spaces", namespace, name)
        if method != "GET":
            self.writer(namespace)
            body = self.json_body()
            if "key" not in body:
                raise HubError(400, "A variable needs a key")
            with self.server.hub.store.lock:
                repo = self.server.hub.store.repo("space", repo["id"])
                if method == "POST":
                    repo["variables"][body["key"]] = {"value": body.get("value", ""),
                                                      "description": body.get("description"), "updatedAt": now_iso()}
                else:
                    repo["variables"].pop(body["key"], None)
                self.server.hub.store.save_repo(repo)
        self.send_json(repo["variables"])

    def resolve_file(self, method, type_segment, namespace, name, revision, path):
        repo = self.find_repo(type_segment, namespace, name)
        store = self.server.hub.store
        sha = store.resolve(repo, revision)
        entry = store.commit(sha)["tree"].get(path)
        if entry is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": sha})
        headers = {"X-Repo-Commit": sha, "ETag": f'"{entry["oid"]}"', "Accept-Ranges": "bytes",
                   "Content-Type": "application/octet-stream"}
        size = entry["size"]
        if method == "HEAD":
            self.send_bytes(b"", headers=headers, length=size)
            return
        data = store.blob_path(entry["oid"]).read_bytes()
        byte_range = self.headers.get("Range")
        if byte_range:
            start, end = parse_range(byte_range, size)
            if start is None:
                raise HubError(416, f"Range {byte_range} not satisfiable for {size} bytes",
                               headers={"Content-Range": f"bytes */{size}", **headers})
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            self.send_bytes(data[start:end + 1], status=206, headers=headers)
            return
        self.send_bytes(data, headers=headers)


def parse_range(header: str, size: int) -> tuple[int | None, int | None]:
    """One `bytes=a-b`, `bytes=a-` or `bytes=-n` range -> inclusive (start, end); (None, None) if unsatisfiable."""
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if not match or match.groups() == ("", ""):
        return None, None
    first, last = match.groups()
    if first == "":
        start, end = max(size - int(last), 0), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    return (start, end) if start <= end and start < size else (None, None)


_REPO = r"/api/(models|datasets|spaces)/([^/]+)/([^/]+)"
ROUTES = [
    (re.compile(r"/api/whoami-v2"), {"GET"}, HubRequestHandler.whoami),
    (re.compile(r"/api/repos/create"), {"POST"}, HubRequestHandler.create),
    (re.compile(r"/api/repos/delete"), {"DELETE"}, HubRequestHandler.delete),
    (re.compile(r"/api/validate-yaml"), {"POST"}, HubRequestHandler.validate_yaml),
    (re.compile(_REPO + r"(?:/revision/([^/]+))?"), {"GET"}, HubRequestHandler.info),
    (re.compile(_REPO + r"/preupload/([^/]+)"), {"POST"}, HubRequestHandler.preupload),
    (re.compile(_REPO + r"/commit/([^/]+)"), {"POST"}, HubRequestHandler.commit),
    (re.compile(_REPO + r"/tree/([^/]+)(?:/(.*))?"), {"GET"}, HubRequestHandler.tree),
    (re.compile(_REPO + r"/paths-info/([^/]+)"), {"POST"}, HubRequestHandler.paths_info),
    (re.compile(_REPO + r"/refs"), {"GET"}, HubRequestHandler.refs),
    (re.compile(_REPO + r"/commits/([^/]+)"), {"GET"}, HubRequestHandler.commits),
    (re.compile(_REPO + r"/branch/(.+)"), {"POST"}, HubRequestHandler.branch),
    (re.compile(r"/api/spaces/([^/]+)/([^/]+)/variables"), {"GET", "POST", "DELETE"}, HubRequestHandler.variables),
    (re.compile(r"/(?:(datasets|spaces)/)?([^/]+)/([^/]+)/resolve/([^/]+)/(.+)"), {"GET", "HEAD"},
     HubRequestHandler.resolve_file),
]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hub: "HubServer"


class HubServer:
    """The loopback Hub: `start()` serves in a background thread, `stop()` shuts it down (or use `with`).

    Args:
        root: folder for the repos, commits and blobs (created if needed).
        tokens: bearer token -> user name; a token grants writing to the user's namespace and organisations.
        orgs: user name -> organisation names.
        port: 0 picks a free port (read `url` after `start()`).
    """

    def __init__(self, root: str | Path, *, tokens: dict[str, str] | None = None,
                 orgs: dict[str, list[str]] | None = None, host: str = "127.0.0.1", port: int = 0):
        self.store = HubStore(Path(root))
        self.tokens = dict(tokens or {})
        self.orgs = {user: list(names) for user, names in (orgs or {}).items()}
        self.host, self.port = host, port
        self.requests: list[RequestRecord] = []
        self.unhandled: list[RequestRecord] = []
        self._log_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def record(self, record: RequestRecord) -> None:
        with self._log_lock:
            self.requests.append(record)

    def start(self) -> "HubServer":
        self._server = _Server((self.host, self.port), HubRequestHandler)
        self._server.hub = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="loopback-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)
            self._server = self._thread = None

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv=None) -> None:
    """Run the loopback Hub in the foreground (Ctrl-C stops it)."""
    import argparse
    import tempfile
    import time

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--root", default=None, help="storage folder (default: a new temporary folder)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--token", action="append", default=[], metavar="TOKEN=USER",
                        help="a bearer token and the user it authenticates (repeatable)")
    args = parser.parse_args(argv)
    tokens = dict(item.split("=", 1) for item in args.token)
    root = args.root or tempfile.mkdtemp(prefix="loopback-hub-")
    with HubServer(root, tokens=tokens, port=args.port) as hub:
        print(f"HF_ENDPOINT={hub.url}  (storage: {root})", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
