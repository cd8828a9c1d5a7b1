"""FID references (`--fid-ref`): the ADM reference batch and DD statistics formats, the named registry, the checks
that refuse a reference that cannot score a model, and FID through torch-fidelity's Inception path.

torch-fidelity's Inception weights come from GitHub (unreachable in CI), so the Inception tests build a file of
random weights in its layout (the SHA-256 check is pointed at it) and run the network at 75 px instead of 299 px
(its smallest input; 16× fewer FLOPs): every other step — the "inception-v3-compat" extractor, its 2048-d pool3
layer, the weights file, torch-fidelity's statistics and Fréchet distance — is the real one.
"""

import json
import zipfile

import numpy as np
import pytest
import torch

from ardistill.bench import quality
from ardistill.bench.quality import ImageTensor, fidelity_against_reference
from ardistill.bench.references import (FID_REFERENCES, check_reference_fits, load_reference, open_reference,
                                        read_statistics_pth, references_home)
from ardistill.cli import main
from ardistill.errors import ArdistillError
from ardistill.io import sha256_file


@pytest.fixture(scope="module")
def inception_75px(tmp_path_factory):
    """(weights file, monkeypatched for the module): random Inception weights, network input 75 px."""
    from unittest import mock

    import torch_fidelity.feature_extractor_inceptionv3 as fe

    cls = fe.FeatureExtractorInceptionV3
    gen = torch.Generator().manual_seed(0)
    with mock.patch.object(fe, "load_state_dict_from_url", lambda *a, **k: {}), mock.patch.object(cls, "load_state_dict", lambda self, sd: None):
        net = cls("inception-v3-compat", ["2048"])
    for m in net.modules():  # variance-preserving init, so pool3 features are neither vanishing nor exploding
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            m.weight.data = torch.randn(m.weight.shape, generator=gen) * (2.0 / m.weight[0].numel()) ** 0.5
    path = tmp_path_factory.mktemp("inception") / "random-inception.pth"
    torch.save(net.state_dict(), path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cls, "INPUT_IMAGE_SIZE", 75)
        mp.setattr(quality, "INCEPTION_SHA256_PREFIX", sha256_file(path)[:8])
        yield str(path)


def heldout_uint8(num: int, seed: int, size: int = 32) -> torch.Tensor:
    from ardistill.data import split_images
    from ardistill.images import to_uint8

    images, _ = split_images(num, split="heldout", seed=seed, size=size)
    return to_uint8(images).permute(0, 3, 1, 2).contiguous()


def save_dd_statistics(path, mu, sigma, *, numpy1: bool = False) -> None:
    """A `statistic.pth` as the DD release writes it: torch.save({"m": mu, "s": sigma}) of numpy arrays;
    `numpy1`: with numpy 1's module name for the array reconstructor (files written before numpy 2)."""
    torch.save({"m": mu, "s": sigma}, path)
    if numpy1:
        with zipfile.ZipFile(path) as zin:
            members = [(info, zin.read(info)) for info in zin.infolist()]
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zout:
            for info, data in members:
                zout.writestr(info, data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray") if info.filename.endswith("data.pkl") else data)


def test_fid_against_statistics_matches_torch_fidelity_on_the_images(inception_75px, tmp_path):
    """FID of generated images against a stats-only ADM .npz (and the same statistics as a DD statistic.pth) equals
    torch-fidelity's own FID against the reference images."""
    import torch_fidelity
    from torch_fidelity.metric_fid import fid_featuresdict_to_statistics
    from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

    generated, real = ImageTensor(heldout_uint8(10, seed=1)), ImageTensor(heldout_uint8(16, seed=0))
    fe = create_feature_extractor("inception-v3-compat", ["2048"], cuda=False, feature_extractor_weights_path=inception_75px, verbose=False)
    stats = fid_featuresdict_to_statistics(get_featuresdict_from_dataset(real, fe, 64, False, True, False), "2048")
    assert stats["mu"].shape == (2048,) and stats["sigma"].shape == (2048, 2048)
    np.savez(tmp_path / "stats.npz", mu=stats["mu"], sigma=stats["sigma"], mu_s=np.zeros(8), sigma_s=np.eye(8))
    save_dd_statistics(tmp_path / "statistic.pth", stats["mu"], stats["sigma"], numpy1=True)

    ours = fidelity_against_reference(generated, load_reference(tmp_path / "stats.npz"), extractor="inception-v3-compat",
                                      weights_path=quality.inception_weights(inception_75px), device=torch.device("cpu"))
    theirs = torch_fidelity.calculate_metrics(input1=generated, input2=real, feature_extractor="inception-v3-compat",
                                              feature_extractor_weights_path=inception_75px, fid=True, cuda=False, cache=False, verbose=False)
    assert ours["fid_against"].startswith("reference statistics") and ours["num_reference"] is None
    assert ours["fid"] > 0 and ours["fid"] == pytest.approx(theirs["frechet_inception_distance"], rel=1e-4)
    dd = load_reference(tmp_path / "statistic.pth").fid_statistics  # the DD file: the very same statistics
    assert all(np.array_equal(dd[k], np.asarray(stats[k], np.float64)) for k in ("mu", "sigma"))


def test_dd_statistics_file_formats(tmp_path):
    mu, sigma = np.arange(4, dtype=np.float32), np.eye(4)
    save_dd_statistics(tmp_path / "np2.pth", mu, sigma)
    save_dd_statistics(tmp_path / "np1.pth", mu, sigma, numpy1=True)
    torch.save({"m": torch.from_numpy(mu), "s": torch.from_numpy(sigma)}, tmp_path / "tensors.pt")
    for name in ("np2.pth", "np1.pth", "tensors.pt"):
        stats = read_statistics_pth(tmp_path / name)
        assert stats["mu"].dtype == np.float64 and np.array_equal(stats["mu"], mu) and np.array_equal(stats["sigma"], sigma)
    folder = tmp_path / "ImageNet-256_FID_Statistic"  # the release's --fid_statistic DIR holding statistic.pth
    folder.mkdir()
    save_dd_statistics(folder / "statistic.pth", mu, sigma)
    ref = load_reference(folder)
    assert ref.images is None and ref.image_size is None and np.array_equal(ref.fid_statistics["mu"], mu)

    torch.save({"m": mu}, tmp_path / "no_s.pth")
    with pytest.raises(ArdistillError, match="keys m and s"):
        read_statistics_pth(tmp_path / "no_s.pth")
    torch.save({"m": np.zeros(3), "s": np.eye(4)}, tmp_path / "shapes.pth")
    with pytest.raises(ArdistillError, match=r"mu \[D\] and sigma \[D, D\]"):
        read_statistics_pth(tmp_path / "shapes.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(ArdistillError, match="not a readable FID statistics file"):
        read_statistics_pth(tmp_path / "junk.pth")


class _NotAnArray:
    def __reduce__(self):
        return (print, ("unpickled code ran",))


def test_statistics_file_never_runs_pickled_code(tmp_path, capsys):
    torch.save({"m": _NotAnArray(), "s": np.eye(2)}, tmp_path / "evil.pth")
    with pytest.raises(ArdistillError, match="not a readable FID statistics file") as e:
        read_statistics_pth(tmp_path / "evil.pth")
    assert "\n" not in str(e.value) and "unpickled code ran" not in capsys.readouterr().out


def test_registry_names_where_each_reference_lives():
    adm, dd = FID_REFERENCES["adm-imagenet256"], FID_REFERENCES["dd-imagenet256"]
    assert adm.hub is None and adm.url.endswith("/ref_batches/imagenet/256/VIRTUAL_imagenet256_labeled.npz")
    assert (dd.hub.repo_id, dd.hub.filename) == ("microsoft/distilled_decoding", "ImageNet-256_FID_Statistic/statistic.pth")
    assert dd.hub.url == "https://huggingface.co/microsoft/distilled_decoding/resolve/main/ImageNet-256_FID_Statistic/statistic.pth"
    for r in (adm, dd):
        assert (r.image_size, r.num_classes) == (256, 1000) and r.reproduces and r.protocol


def test_named_reference_found_locally_or_one_line_error_with_the_download_command(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import time by huggingface_hub
    home = references_home(tmp_path)
    with pytest.raises(ArdistillError) as e:
        open_reference("adm-imagenet256", weights_dir=tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "not on the Hugging Face Hub" in msg
    assert f"curl -L --create-dirs -o {home / 'VIRTUAL_imagenet256_labeled.npz'} {FID_REFERENCES['adm-imagenet256'].url}" in msg
    with pytest.raises(ArdistillError) as e:
        open_reference("dd-imagenet256", weights_dir=tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "could not be downloaded" in msg
    assert f"hf download microsoft/distilled_decoding ImageNet-256_FID_Statistic/statistic.pth --revision main --local-dir {home}" in msg

    images = np.random.default_rng(0).integers(0, 256, size=(2, 256, 256, 3), dtype=np.uint8)
    home.mkdir(parents=True, exist_ok=True)
    np.savez(home / "VIRTUAL_imagenet256_labeled.npz", arr_0=images, mu=np.zeros(2048), sigma=np.eye(2048))
    (home / "ImageNet-256_FID_Statistic").mkdir(exist_ok=True)
    save_dd_statistics(home / "ImageNet-256_FID_Statistic" / "statistic.pth", np.zeros(2048, np.float32), np.eye(2048))
    adm = open_reference("adm-imagenet256", weights_dir=tmp_path)
    assert adm.spec.name == "adm-imagenet256" and adm.image_size == 256 and len(adm.images) == 2
    assert adm.source.startswith("adm-imagenet256 (") and adm.fid_statistics["sigma"].shape == (2048, 2048)
    dd = open_reference("dd-imagenet256", weights_dir=tmp_path)
    assert dd.spec.name == "dd-imagenet256" and dd.image_size == 256 and dd.images is None
    np.savez(home / "VIRTUAL_imagenet256_labeled.npz", arr_0=images[:, :64, :64], mu=np.zeros(2048), sigma=np.eye(2048))
    with pytest.raises(ArdistillError, match="64-px images, not the 256-px reference"):
        open_reference("adm-imagenet256", weights_dir=tmp_path)


def test_references_that_cannot_score_the_model_are_refused(tmp_path):
    np.savez(tmp_path / "r64.npz", arr_0=np.zeros((2, 64, 64, 3), np.uint8))
    np.savez(tmp_path / "s4.npz", mu=np.zeros(4), sigma=np.eye(4))
    ref64, stats4 = load_reference(tmp_path / "r64.npz"), load_reference(tmp_path / "s4.npz")
    assert ref64.image_size == 64 and stats4.image_size is None
    check_reference_fits(ref64, model="m", image_size=64, num_classes=12)
    with pytest.raises(ArdistillError, match="holds 64×64 images; m makes 32×32 images"):
        check_reference_fits(ref64, model="m", image_size=32, num_classes=12)
    with pytest.raises(ArdistillError, match="statistics of 4-d features"):
        check_reference_fits(stats4, model="m", image_size=32, num_classes=12)
    named = load_reference(tmp_path / "r64.npz")
    named.spec, named.image_size = FID_REFERENCES["adm-imagenet256"], 256
    with pytest.raises(ArdistillError, match="class-conditional ImageNet .1000 classes.; m has 12 classes"):
        check_reference_fits(named, model="m", image_size=32, num_classes=12)
    with pytest.raises(ArdistillError, match="holds 256×256 images; m makes 32×32"):
        check_reference_fits(named, model="m", image_size=32, num_classes=1000)


# ------------------------------------------------------------------------------------------------------------ CLI
BENCH = ["bench", "--teacher", "var-toy-l", "--random-init", "--batch-sizes", "1", "--repeats", "1", "--warmup", "0", "--no-grids"]


def run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


@pytest.mark.parametrize("extra, needle", [
    (["--fid", "--fid-ref", "adm-imagenet256"], "class-conditional ImageNet (1000 classes); var-toy-l has 12 classes"),
    (["--fid", "--fid-ref", "{tmp}/r64.npz"], "holds 64×64 images; var-toy-l makes 32×32 images"),
    (["--fid", "--fid-ref", "{tmp}/junk.pth"], "not a readable FID statistics file"),
    (["--fid", "--fid-ref", "{tmp}/nothing.npz"], "no such file or reference name"),
    (["--fid-ref", "{tmp}/r64.npz"], "--fid-ref needs --fid"),
    (["--fid", "--num-samples", "13", "--fid-ref", "{tmp}/r32.npz"], "multiple of 12"),
])
def test_cli_refuses_a_reference_that_cannot_be_used(extra, needle, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.savez(tmp_path / "r64.npz", arr_0=np.zeros((2, 64, 64, 3), np.uint8))
    np.savez(tmp_path / "r32.npz", arr_0=np.zeros((2, 32, 32, 3), np.uint8))
    (tmp_path / "junk.pth").write_bytes(b"junk")
    code, _, err = run([*BENCH, *[a.format(tmp=tmp_path) for a in extra], "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "bench.json").exists()


def test_cli_scores_against_a_reference_path(inception_75px, tmp_path, capsys):
    """`--fid --fid-ref PATH` (an ADM-format .npz at the model's size): Inception FID, KID, precision/recall."""
    real = heldout_uint8(12, seed=0).permute(0, 2, 3, 1).numpy()
    np.savez(tmp_path / "ref32.npz", arr_0=real)
    code, _, err = run([*BENCH, "--fid", "--num-samples", "12", "--fid-ref", str(tmp_path / "ref32.npz"),
                        "--inception-weights", inception_75px, "--out", str(tmp_path / "out")], capsys)
    assert code in (0, None), err
    q = json.loads((tmp_path / "out" / "bench.json").read_text())["quality"]["teacher"]
    assert q["extractor"].startswith("inception-v3-compat") and q["reference"] == str(tmp_path / "ref32.npz")
    assert q["fid_against"] == "reference images" and q["num_images"] == q["num_reference"] == 12
    assert q["fid"] > 0 and "kid_mean" in q and "precision" in q and "class_accuracy" not in q


def test_dd_statistics_download_through_the_hub_client(tmp_path, monkeypatch):
    """`dd-imagenet256` fetched by the real huggingface_hub client from a local server standing in for the Hub:
    it lands under <weights dir>/fid-references in the repository's layout and is read from there."""
    import hashlib
    import http.server
    import threading

    import huggingface_hub.constants as hub_constants

    served = tmp_path / "served.pth"
    save_dd_statistics(served, np.arange(2048, dtype=np.float32), np.eye(2048))
    data = served.read_bytes()
    wanted = "/microsoft/distilled_decoding/resolve/main/ImageNet-256_FID_Statistic/statistic.pth"
    requests = []

    class Hub(http.server.BaseHTTPRequestHandler):
        def _headers(self) -> bool:
            requests.append((self.command, self.path))
            ok = self.path == wanted
            self.send_response(200 if ok else 404)
            self.send_header("Content-Length", str(len(data) if ok else 0))
            if ok:
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("X-Repo-Commit", "0" * 40)
            self.end_headers()
            return ok

        def do_HEAD(self):
            self._headers()

        def do_GET(self):
            if self._headers():
                self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)  # huggingface_hub reads it at import time: patch its constants too
    monkeypatch.setattr(hub_constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(hub_constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    try:
        ref = open_reference("dd-imagenet256", weights_dir=tmp_path / "home")
    finally:
        server.shutdown()
    local = references_home(tmp_path / "home") / "ImageNet-256_FID_Statistic" / "statistic.pth"
    assert local.read_bytes() == data and ("GET", wanted) in requests
    assert ref.source == f"dd-imagenet256 ({local})" and np.array_equal(ref.fid_statistics["mu"], np.arange(2048))
    requests.clear()
    assert open_reference("dd-imagenet256", weights_dir=tmp_path / "home").fid_statistics["sigma"].shape == (2048, 2048)
    assert requests == []  # present locally: no network
