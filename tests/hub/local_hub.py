"""A local Hugging Face Hub for download tests, and tiny models whose official files it serves (the fixtures that
use them are in tests/hub/conftest.py; this module has its own name so that tests can import it).

`HubServer` is an `http.server` thread on 127.0.0.1 that answers the real `huggingface_hub` client the way
huggingface.co does for LFS files: `HEAD|GET /{repo_id}/resolve/{revision}/{filename}` with `X-Repo-Commit`,
`ETag` / `X-Linked-Etag` (the file's sha256), `X-Linked-Size`, `Content-Length`, `Accept-Ranges` and 206 answers to
`Range: bytes=N-`; a missing file is a 404 with `X-Error-Code: EntryNotFound`. Faults on demand: `cut_once` closes
the socket halfway through the first GET of a file, `corrupt` serves other bytes than the advertised sha256.
Tests point the client at it with `HF_ENDPOINT` (read at call time by ardistill.hub; a subprocess reads it at import).
"""

import hashlib
import io
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import torch


COMMITS = {  # test repositories: one commit each (40 hex digits, as the client requires for a pinned revision)
    "FoundationVision/var": "1" * 40,
    "FoundationVision/LlamaGen": "2" * 40,
    "microsoft/distilled_decoding": "3" * 40,
}
RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")


class HubServer:
    def __init__(self):
        self.files: dict[tuple[str, str], bytes] = {}  # (repo_id, filename) → content
        # Commits each repository has ("main" is the first); the pinned revisions of ardistill's zoo exist too, so
        # that the registered official names download from this server as they would from huggingface.co.
        from ardistill.zoo import HUB_REVISIONS

        self.commits = {repo: [c] + [HUB_REVISIONS[repo]] * (len(HUB_REVISIONS.get(repo, "")) == 40)
                        for repo, c in COMMITS.items()}
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.cut_once: set[str] = set()  # filenames whose next GET is cut halfway
        self.corrupt: set[str] = set()  # filenames served with one byte flipped
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_HEAD(self):
                self._answer(body=False)

            def do_GET(self):
                self._answer(body=True)

            def _answer(self, body: bool):
                server.requests.append((self.command, self.path, self.headers.get("Range")))
                m = RESOLVE.match(self.path.split("?")[0])
                if m is None:
                    return self._error(404, "RepoNotFound")
                repo, rev, filename = m["repo"], unquote(m["rev"]), unquote(m["file"])
                commits = server.commits.get(repo)
                if commits is None:
                    return self._error(404, "RepoNotFound")
                if rev != "main" and rev not in commits:
                    return self._error(404, "RevisionNotFound")
                commit = commits[0] if rev == "main" else rev
                content = server.files.get((repo, filename))
                if content is None:
                    return self._error(404, "EntryNotFound", commit)
                sha = hashlib.sha256(content).hexdigest()
                served = content
                if filename in server.corrupt:
                    served = content[:-1] + bytes([content[-1] ^ 0xFF])
                start = 0
                rng = self.headers.get("Range")
                if rng:
                    start = int(re.match(r"bytes=(\d+)-", rng)[1])
                self.send_response(206 if rng else 200)
                self.send_header("X-Repo-Commit", commit)
                self.send_header("ETag", f'"{sha}"')
                self.send_header("X-Linked-Etag", f'"{sha}"')
                self.send_header("X-Linked-Size", str(len(content)))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(content) - start))
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
                self.end_headers()
                if not body:
                    return
                data = served[start:]
                if filename in server.cut_once:
                    server.cut_once.discard(filename)
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)  # the peer sees the body end early
                    return
                self.wfile.write(data)

            def _error(self, code, error_code, commit=None):
                self.send_response(code)
                self.send_header("X-Error-Code", error_code)
                if commit:
                    self.send_header("X-Repo-Commit", commit)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def add(self, repo_id: str, filename: str, content: bytes) -> None:
        self.files[(repo_id, filename)] = content

    def revisions(self, repo_id: str) -> set[str]:
        """The revisions requested from a repository."""
        return {unquote(m["rev"]) for _, path, _ in self.requests
                if (m := RESOLVE.match(path.split("?")[0])) is not None and m["repo"] == repo_id}

    def gets(self, filename: str) -> list[str | None]:
        """The Range header of every GET of `filename` (None: a whole-file GET)."""
        return [rng for method, path, rng in self.requests if method == "GET" and unquote(path).endswith("/" + filename)]


# ------------------------------------------------------------------------------------------- tiny official files
def torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def tiny_var_config():
    from ardistill.models.var.config import VARConfig, VQVAEConfig

    pns = (1, 2, 3)
    vae = VQVAEConfig(vocab_size=16, z_channels=4, ch=32, ch_mult=(1, 2), num_res_blocks=1, patch_nums=pns)
    return VARConfig(depth=2, embed_dim=32, num_heads=2, num_classes=4, patch_nums=pns, vocab_size=16, z_channels=4,
                     drop_path_rate=0.0, vae=vae)


def tiny_llamagen_config():
    from ardistill.models.llamagen.config import GPTConfig, VQConfig

    vq = VQConfig(codebook_size=64, codebook_embed_dim=8, encoder_ch_mult=(1, 1, 2), decoder_ch_mult=(1, 1, 2), z_channels=64,
                  ch=32, num_res_blocks=1)
    return GPTConfig(dim=64, n_layer=2, n_head=4, num_classes=10, vocab_size=64, block_size=16, vq=vq)


def official_var_files(seed: int = 0) -> dict[str, bytes]:
    """var_tiny.pth / vae_tiny.pth as the VAR release stores them (plain state dicts), random weights."""
    from official_layout import fill_official_layout_

    from ardistill.models.var.transformer import VARTransformer
    from ardistill.models.var.vqvae import VQVAE

    cfg = tiny_var_config()
    torch.manual_seed(seed)
    var, vae = VARTransformer(cfg), VQVAE(cfg.vae)
    var_sd, vae_sd = var.state_dict(), vae.state_dict()
    fill_official_layout_(var_sd, seed)
    fill_official_layout_(vae_sd, seed + 1)
    return {"var_tiny.pth": torch_bytes(var_sd), "vae_tiny.pth": torch_bytes(vae_sd)}


def official_var_student_file(seed: int = 0) -> bytes:
    """A DD release file for the tiny VAR teacher: `{"trainer": {"ema_parameters": ...}}` as VAR-DD/var-d*.pth."""
    from ardistill.models.dd import VARStudent

    torch.manual_seed(seed)
    student = VARStudent(tiny_var_config())
    return torch_bytes({"trainer": {"ema_parameters": {k: v.detach().clone() for k, v in student.named_parameters()}}})


def official_llamagen_files(seed: int = 0) -> dict[str, bytes]:
    """c2i_tiny_16.pt / vq_tiny.pt as the LlamaGen release stores them (state dicts under "model"), random weights."""
    from ardistill.models.llamagen.gpt import LlamaGenGPT
    from ardistill.models.llamagen.vq import VQModel

    cfg = tiny_llamagen_config()
    torch.manual_seed(seed)
    gpt, vq = LlamaGenGPT(cfg), VQModel(cfg.vq)
    gpt.init_weights(torch.Generator().manual_seed(seed))
    with torch.no_grad():
        gpt.output.weight.normal_(0, 0.02)  # the official init zeroes the head; keep the logits non-trivial
    return {"c2i_tiny_16.pt": torch_bytes({"model": gpt.state_dict(), "steps": 1}),
            "vq_tiny.pt": torch_bytes({"model": vq.state_dict(), "steps": 1})}


VAR_NAME, LLAMAGEN_NAME, STUDENT_NAME = "var-hub-tiny", "llamagen-hub-tiny", "dd-var-hub-tiny"
