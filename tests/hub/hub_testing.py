"""Helpers of the hub/CLI tests: a loopback fake Hugging Face Hub and a tiny saved Swin checkpoint.

The fake Hub is a stdlib `http.server` bound to 127.0.0.1 on a free port, answering the endpoints huggingface_hub
calls to create a repo, a branch and a commit (docs: shared/notes/STACK.md §3). Files it receives are written under
`<tmp>/<org>/<name>/<revision>/` so tests can read back exactly what was uploaded. No test talks to the real Hub.
"""

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


class FakeHub:
    """A minimal Hub: repos/create, branch, validate-yaml, preupload (always "regular" uploads) and commit."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.requests: list[tuple[str, str]] = []  # (method, path) in arrival order
        self.repos: dict[str, dict] = {}  # repo_id -> {"private": bool, "branches": {...}, "commits": [...]}
        self.validated_yaml: list[str] = []
        self.authorizations: list[str | None] = []  # the Authorization header of every POST
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeHub":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def files(self, repo_id: str, revision: str = "main") -> Path:
        return self.root / repo_id / revision

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _reply(self, status: int, payload=None, error_code: str | None = None):
                body = json.dumps(payload if payload is not None else {}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if error_code:
                    self.send_header("X-Error-Code", error_code)
                    self.send_header("X-Error-Message", str((payload or {}).get("error", error_code)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_HEAD(self):  # noqa: N802 - no existing files (e.g. README.md) on this Hub
                hub.requests.append(("HEAD", self.path))
                self._reply(404, {"error": "Entry not found"}, "EntryNotFound")

            def do_GET(self):  # noqa: N802 - /api/agent-harnesses and everything else: not found
                hub.requests.append(("GET", self.path))
                self._reply(404, {"error": "Not found"})

            def do_POST(self):  # noqa: N802
                path = unquote(urlsplit(self.path).path)
                hub.requests.append(("POST", path))
                hub.authorizations.append(self.headers.get("Authorization"))
                body = self._body()
                if path == "/api/repos/create":
                    data = json.loads(body)
                    repo = f"{data['organization']}/{data['name']}" if data.get("organization") else data["name"]
                    if repo in hub.repos:
                        return self._reply(409, {"error": "You already created this model repo",
                                                 "url": f"{hub.url}/{repo}"})
                    private = bool(data.get("private")) or data.get("visibility") == "private"
                    hub.repos[repo] = {"private": private, "branches": {"main"}, "commits": []}
                    return self._reply(200, {"url": f"{hub.url}/{repo}", "name": repo})
                if path == "/api/validate-yaml":
                    hub.validated_yaml.append(json.loads(body)["content"])
                    return self._reply(200, {"errors": [], "warnings": []})
                match = re.fullmatch(r"/api/models/(.+)/(preupload|commit|branch)/([^/]+)", path)
                if not match:
                    return self._reply(404, {"error": f"no fake endpoint for {path}"})
                repo, action, revision = match.groups()
                if repo not in hub.repos:
                    return self._reply(404, {"error": "Repository not found"}, "RepoNotFound")
                branches = hub.repos[repo]["branches"]
                if action == "branch":
                    if revision in branches:
                        return self._reply(409, {"error": "Branch already exists"})
                    branches.add(revision)
                    return self._reply(200, {})
                if revision not in branches:
                    return self._reply(404, {"error": f"Invalid rev id: {revision}"}, "RevisionNotFound")
                if action == "preupload":
                    files = json.loads(body)["files"]
                    return self._reply(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                        "shouldIgnore": False} for f in files]})
                lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
                header = next(line["value"] for line in lines if line["key"] == "header")
                written = []
                for line in lines:
                    if line["key"] == "file":
                        target = hub.files(repo, revision) / line["value"]["path"]
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(base64.b64decode(line["value"]["content"]))
                        written.append(line["value"]["path"])
                    elif line["key"] != "header":
                        return self._reply(400, {"error": f"fake hub does not support {line['key']}"})
                oid = hashlib.sha1(body).hexdigest()
                hub.repos[repo]["commits"].append({"oid": oid, "revision": revision, "summary": header.get("summary"),
                                                   "files": written})
                return self._reply(200, {"commitUrl": f"{hub.url}/{repo}/commit/{oid}", "commitOid": oid})

        return Handler


LABELS = ["t-shirt", "trouser", "pullover", "dress", "coat"]


def make_tiny_swin(path: Path, with_card: bool = True) -> Path:
    """A complete tiny Swin classifier folder: config + safetensors + 32x32 processor (+ card)."""
    import torch

    import hf_vision_zoo
    from hf_vision_zoo import hub, registry

    torch.manual_seed(0)
    tiny = dict(registry.get_architecture("swin").tiny_config)
    tiny.update(id2label=dict(enumerate(LABELS)), label2id={name: i for i, name in enumerate(LABELS)})
    tiny.pop("num_labels", None)
    model = hf_vision_zoo.create_model("swin", **tiny).eval()
    processor = registry.create_image_processor("swin", size={"height": 32, "width": 32}, do_center_crop=False)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    if with_card:
        hub.write_model_card(path, dataset_name="fashion_mnist", metrics={"top1": 0.875, "top5": 0.996},
                             training_args={"epochs": 2, "learning_rate": 1e-3, "per_device_batch_size": 64,
                                            "seed": 0})
    return Path(path)
