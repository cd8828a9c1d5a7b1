"""Model names resolve through one registry; missing weights are one-line errors that say where to look."""

import pytest

from ardistill.errors import UnknownModelError, WeightsMissingError
from ardistill.registry import find_weight_file, get_model_spec, list_models, weights_home
from ardistill.zoo import HUB_REVISIONS


def test_official_names_registered():
    names = {s.name for s in list_models()}
    assert {"var-d16", "var-d20", "var-d24", "var-d30", "var-d36"} <= names
    assert get_model_spec("var-d16").tokens_per_image == 680
    assert get_model_spec("var-d36").tokens_per_image == 2240
    assert get_model_spec("var-d36").image_size == 512


def test_unknown_name_suggests_close_names():
    with pytest.raises(UnknownModelError, match="did you mean .*var-d16"):
        get_model_spec("var-d61")


def test_missing_weights_error_names_file_folder_source_and_command(tmp_path):
    spec = get_model_spec("var-d16")  # offline (tests/conftest.py): the file cannot be downloaded
    with pytest.raises(WeightsMissingError) as e:
        find_weight_file(spec, "transformer", tmp_path)
    msg = str(e.value)
    assert "var_d16.pth" in msg and str(tmp_path) in msg and "`ardistill download var-d16`" in msg and "offline" in msg
    assert f"FoundationVision/var/resolve/{HUB_REVISIONS['FoundationVision/var']}/var_d16.pth" in msg
    assert "\n" not in msg


def test_weights_home_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("ARDISTILL_HOME", str(tmp_path / "env"))
    assert weights_home() == tmp_path / "env"
    assert weights_home(tmp_path / "flag") == tmp_path / "flag"


def test_safetensors_conversion_is_found(tmp_path):
    spec = get_model_spec("var-d16")
    (tmp_path / "var_d16.safetensors").write_bytes(b"")
    assert find_weight_file(spec, "transformer", tmp_path).name == "var_d16.safetensors"
