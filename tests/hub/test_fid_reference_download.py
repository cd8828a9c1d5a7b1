"""The DD release's FID statistics (`dd-imagenet256`) come through the same Hub client as the weights."""

import io

import numpy as np
import torch

from ardistill.bench.references import FID_REFERENCES, open_reference, references_home


def test_dd_statistics_download_through_the_hub_client(hub_server, tmp_path):
    """Fetched by the real huggingface_hub client from the local Hub; lands under <weights dir>/fid-references in the
    repository's layout, is read from there, and the second lookup makes no request."""
    spec = FID_REFERENCES["dd-imagenet256"]
    buf = io.BytesIO()
    torch.save({"m": np.arange(2048, dtype=np.float32), "s": np.eye(2048)}, buf)  # the release's own format
    data = buf.getvalue()
    hub_server.add(spec.hub.repo_id, spec.hub.filename, data)
    ref = open_reference("dd-imagenet256", weights_dir=tmp_path / "home")
    local = references_home(tmp_path / "home") / "ImageNet-256_FID_Statistic" / "statistic.pth"
    assert local.read_bytes() == data and hub_server.gets("statistic.pth")
    assert ref.source == f"dd-imagenet256 ({local})" and np.array_equal(ref.fid_statistics["mu"], np.arange(2048))
    hub_server.requests.clear()
    assert open_reference("dd-imagenet256", weights_dir=tmp_path / "home").fid_statistics["sigma"].shape == (2048, 2048)
    assert hub_server.requests == []  # present locally: no network
