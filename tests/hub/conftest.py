"""Fixtures of tests/hub: a running local Hub (`hub_server`), tiny registered models (`hub_models`) and both (`served`)."""

import pytest

from ardistill import registry
from ardistill.hub import HubFile
from ardistill.models.dd.config import DDStudentConfig
from ardistill.registry import ModelSpec, WeightFile
from local_hub import (COMMITS, LLAMAGEN_NAME, STUDENT_NAME, VAR_NAME, HubServer, official_llamagen_files, official_var_files,
                       official_var_student_file, tiny_llamagen_config, tiny_var_config)


@pytest.fixture
def hub_server(monkeypatch):
    """A running local Hub; the client points to it and may download (tests/conftest.py makes every test offline)."""
    server = HubServer()
    server.thread.start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    # huggingface_hub reads HF_HUB_OFFLINE once, at import (which may happen inside an offline test): online here.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def hub_models(monkeypatch):
    """Tiny registered models whose files live in the official repositories' layouts (served by `hub_server` once a
    test adds them): a VAR teacher, a LlamaGen teacher and a DD student of the VAR teacher under VAR-DD/."""
    registry.list_models()  # load the zoo first so it cannot overwrite the test entries
    var_cfg, gpt_cfg = tiny_var_config(), tiny_llamagen_config()

    def wf(role, repo, path):
        return WeightFile(role, path.rsplit("/", 1)[-1], HubFile(repo, path, revision=COMMITS[repo]))

    specs = [
        ModelSpec(name=VAR_NAME, family="var", config=var_cfg, tokens_per_image=var_cfg.seq_len, image_size=var_cfg.vae.image_size,
                  files=(wf("transformer", "FoundationVision/var", "var_tiny.pth"), wf("tokenizer", "FoundationVision/var", "vae_tiny.pth")),
                  sampling_defaults=dict(cfg=1.5, top_k=8, top_p=0.95, temperature=1.0)),
        ModelSpec(name=LLAMAGEN_NAME, family="llamagen", config=gpt_cfg, tokens_per_image=16, image_size=gpt_cfg.image_size,
                  files=(wf("transformer", "FoundationVision/LlamaGen", "c2i_tiny_16.pt"), wf("tokenizer", "FoundationVision/LlamaGen", "vq_tiny.pt")),
                  sampling_defaults=dict(cfg=2.0, top_k=0, top_p=1.0, temperature=1.0)),
        ModelSpec(name=STUDENT_NAME, family="dd-var", config=DDStudentConfig(family="var", teacher=VAR_NAME, t_list=(0, 1), split=1),
                  files=(wf("student", "microsoft/distilled_decoding", "VAR-DD/var-tiny.pth"),), tokens_per_image=var_cfg.seq_len,
                  image_size=var_cfg.vae.image_size, kind="student"),
    ]
    for spec in specs:
        monkeypatch.setitem(registry._MODELS, spec.name, spec)
    return {spec.name: spec for spec in specs}


@pytest.fixture
def served(hub_server, hub_models):
    """`hub_server` serving every file of `hub_models`."""
    for name, content in official_var_files().items():
        hub_server.add("FoundationVision/var", name, content)
    for name, content in official_llamagen_files().items():
        hub_server.add("FoundationVision/LlamaGen", name, content)
    hub_server.add("microsoft/distilled_decoding", "VAR-DD/var-tiny.pth", official_var_student_file())
    return hub_server
