"""DD trajectory datasets: determinism (batch size, ranks), regeneration from (seed, index), recorded settings,
resume checks, and that the flow-map tokens are distributed like the teacher's own multinomial sampling."""

import json

import pytest
import torch
from trajectory_teachers import tiny_llamagen_teacher, tiny_var_teacher

from ardistill.errors import ArdistillError
from ardistill.methods.dd.flow import FlowMapConfig
from ardistill.methods.dd.noise import trajectory_labels, trajectory_noise
from ardistill.methods.dd.trajectories import (FlowTokenChooser, generate_trajectories, open_trajectories, resolve_sampling,
                                               teacher_flow_tokens, verify_trajectories)

FAST_FLOW = FlowMapConfig(steps=40)
VAR_SAMPLING = dict(cfg=1.5, top_k=20, top_p=0.95, temperature=1.0)
LLAMAGEN_SAMPLING = dict(cfg=2.0, top_k=12, top_p=0.9, temperature=0.9)


@pytest.fixture(scope="module")
def var_teacher():
    return tiny_var_teacher()


@pytest.fixture(scope="module")
def llamagen_teacher():
    return tiny_llamagen_teacher()


def make(teacher, root, sampling, **kw):
    args = dict(num=7, seed=3, shard_size=3, batch_size=2, flow=FAST_FLOW, progress=False) | sampling | kw
    return generate_trajectories(teacher, root, **args)


def shard_hashes(root):
    return [s["sha256"] for s in json.loads((root / "manifest.json").read_text())["shards"]]


@pytest.mark.parametrize("family", ["var", "llamagen"])
def test_batch_size_and_world_size_do_not_change_the_shards(family, var_teacher, llamagen_teacher, tmp_path):
    teacher, sampling = (var_teacher, VAR_SAMPLING) if family == "var" else (llamagen_teacher, LLAMAGEN_SAMPLING)
    runs = {}
    for bs in (1, 3, 7):
        run = make(teacher, tmp_path / f"bs{bs}", sampling, batch_size=bs)
        assert run.finalized and run.samples == 7 and run.shards_written == [0, 1, 2]
        runs[bs] = shard_hashes(tmp_path / f"bs{bs}")
    # Two "processes" of a world of 2, one after the other: rank 1 finishes the dataset and writes the manifest.
    first = make(teacher, tmp_path / "world2", sampling, batch_size=3, rank=0, world=2)
    assert first.shards_written == [0, 2] and not first.finalized
    second = make(teacher, tmp_path / "world2", sampling, batch_size=3, rank=1, world=2)
    assert second.shards_written == [1] and second.finalized
    runs["world2"] = shard_hashes(tmp_path / "world2")
    assert runs[1] == runs[3] == runs[7] == runs["world2"]
    assert verify_trajectories(tmp_path / "bs1") == []


@pytest.mark.parametrize("family", ["var", "llamagen"])
def test_stored_tokens_regenerate_from_seed_and_index(family, var_teacher, llamagen_teacher, tmp_path):
    teacher, sampling = (var_teacher, VAR_SAMPLING) if family == "var" else (llamagen_teacher, LLAMAGEN_SAMPLING)
    make(teacher, tmp_path, sampling)
    data = open_trajectories(tmp_path).load_all()
    assert data["tokens"].dtype == torch.int16 and data["tokens"].shape == (7, teacher.tokens_per_image)
    assert torch.equal(data["index"], torch.arange(7))
    assert torch.equal(data["labels"], trajectory_labels(3, torch.arange(7), teacher.num_classes))
    # A batch of samples the dataset made in different batches, in another order: the same tokens.
    index = torch.tensor([5, 0, 3])
    noise = trajectory_noise(3, index, teacher.tokens_per_image, teacher.codebook.shape[1])
    chooser = FlowTokenChooser(noise, teacher.codebook.float(), FAST_FLOW)
    tokens = teacher_flow_tokens(teacher, data["labels"][index], noise, resolve_sampling(teacher, **sampling), chooser)
    assert torch.equal(tokens, data["tokens"][index].long())
    # Other noise gives other tokens (the tokens really are a function of the noise).
    other = FlowTokenChooser(trajectory_noise(4, index, teacher.tokens_per_image, noise.shape[2]), teacher.codebook.float(), FAST_FLOW)
    assert not torch.equal(teacher_flow_tokens(teacher, data["labels"][index], other.noise, resolve_sampling(teacher, **sampling), other), tokens)


def test_meta_records_everything_and_resume_refuses_other_settings(var_teacher, tmp_path):
    make(var_teacher, tmp_path, VAR_SAMPLING, num=4, shard_size=2)
    meta = open_trajectories(tmp_path).meta
    assert meta["teacher"] == var_teacher.name and meta["family"] == "var" and len(meta["weight_sha256"]) == 64
    assert meta["sampling"] == VAR_SAMPLING and meta["flow"] == FAST_FLOW.to_dict() and meta["seed"] == 3
    assert (meta["tokens_per_image"], meta["code_dim"], meta["vocab_size"], meta["tokens_dtype"]) == (14, 32, 64, "int16")
    # Run again with the same settings: nothing to do, nothing changes.
    before = shard_hashes(tmp_path)
    again = make(var_teacher, tmp_path, VAR_SAMPLING, num=4, shard_size=2, batch_size=1)
    assert again.shards_written == [] and again.samples == 0 and shard_hashes(tmp_path) == before
    with pytest.raises(ArdistillError, match="sampling"):
        make(var_teacher, tmp_path, VAR_SAMPLING | {"cfg": 2.0}, num=4, shard_size=2)
    with pytest.raises(ArdistillError, match="flow"):
        make(var_teacher, tmp_path, VAR_SAMPLING, num=4, shard_size=2, flow=FlowMapConfig(steps=41))
    with pytest.raises(ArdistillError, match="weight_sha256"):
        make(tiny_var_teacher(seed=5), tmp_path, VAR_SAMPLING, num=4, shard_size=2)
    with pytest.raises(ArdistillError, match="num"):
        make(var_teacher, tmp_path, VAR_SAMPLING, num=5, shard_size=2)


def test_bad_arguments_are_one_line_errors(var_teacher, llamagen_teacher, tmp_path):
    with pytest.raises(ArdistillError, match="top_k"):
        make(var_teacher, tmp_path / "a", VAR_SAMPLING | {"top_k": 900})
    with pytest.raises(ArdistillError, match="rank"):
        make(var_teacher, tmp_path / "b", VAR_SAMPLING, rank=2, world=2)
    with pytest.raises(ArdistillError, match="cfg_interval"):
        make(var_teacher, tmp_path / "c", VAR_SAMPLING, cfg_interval=3)
    with pytest.raises(ArdistillError, match="one value"):
        make(llamagen_teacher, tmp_path / "d", LLAMAGEN_SAMPLING | {"temperature": [1.0, 0.9]})
    assert resolve_sampling(llamagen_teacher, top_p=0.0)["top_p"] == 1.0  # 0 = off, recorded as the official 'off'


@pytest.mark.parametrize("family", ["var", "llamagen"])
def test_choose_tokens_never_picks_a_masked_token(family, var_teacher, llamagen_teacher):
    teacher = var_teacher if family == "var" else llamagen_teacher
    sampling = resolve_sampling(teacher, cfg=2.0, top_k=4, top_p=0.6, temperature=1.3)
    index = torch.arange(32)
    noise = trajectory_noise(0, index, teacher.tokens_per_image, teacher.codebook.shape[1])
    chooser = FlowTokenChooser(noise, teacher.codebook.float(), FlowMapConfig(steps=20))
    seen = []

    def checked(logits, step, positions):
        idx = chooser(logits, step, positions)
        seen.append((logits.gather(-1, idx.unsqueeze(-1)).isfinite().all().item(), (logits.isfinite().sum(-1) <= 4).all().item()))
        return idx

    tokens = teacher_flow_tokens(teacher, trajectory_labels(0, index, teacher.num_classes), noise, sampling, checked)
    assert tokens.shape == (32, teacher.tokens_per_image)
    steps = teacher.num_scales if family == "var" else teacher.tokens_per_image
    assert len(seen) == steps and all(ok for ok, _ in seen) and all(masked for _, masked in seen)


def homogeneity_p_value(a: torch.Tensor, b: torch.Tensor) -> float:
    """Chi-square test that two samples of tokens [N] come from one distribution (bins with < 10 total merged)."""
    V = int(max(a.max(), b.max())) + 1
    table = torch.stack([torch.bincount(a, minlength=V), torch.bincount(b, minlength=V)]).double()
    small = table.sum(0) < 10
    table = torch.cat([table[:, ~small], table[:, small].sum(1, keepdim=True)], dim=1)
    table = table[:, table.sum(0) > 0]
    expected = table.sum(1, keepdim=True) * table.sum(0, keepdim=True) / table.sum()
    stat = ((table - expected) ** 2 / expected).sum()
    dof = table.shape[1] - 1
    return float(torch.special.gammaincc(torch.tensor(dof / 2, dtype=torch.float64), stat / 2))


@pytest.mark.parametrize("family", ["var", "llamagen"])
def test_flow_tokens_are_distributed_like_the_teachers_samples(family, tmp_path):
    """Per-position histograms of a 3000-sample dataset vs the teacher's multinomial sampler on the same labels; the
    same test against a sampler with the wrong temperature must fail (so the test has power)."""
    if family == "var":
        teacher, sampling, positions = tiny_var_teacher(patch_nums=(1, 2)), dict(cfg=2.0, top_k=30, top_p=0.95, temperature=1.2), range(5)
    else:
        teacher, sampling, positions = tiny_llamagen_teacher(), dict(cfg=2.0, top_k=40, top_p=1.0, temperature=1.2), range(3)
    num = 3000
    generate_trajectories(teacher, tmp_path, num=num, seed=11, shard_size=num, batch_size=500, flow=FlowMapConfig(steps=100),
                          progress=False, **sampling)
    data = open_trajectories(tmp_path).load_all()
    flow_tokens = data["tokens"].long()
    ref = torch.cat([teacher.sample(data["labels"][i:i + 500], seed=300 + i, **sampling) for i in range(0, num, 500)])
    wrong = torch.cat([teacher.sample(data["labels"][i:i + 500], seed=200 + i, **(sampling | {"temperature": 3.0}))
                       for i in range(0, num, 500)])
    p_same = [homogeneity_p_value(flow_tokens[:, j], ref[:, j]) for j in positions]
    p_wrong = [homogeneity_p_value(flow_tokens[:, j], wrong[:, j]) for j in positions]
    assert min(p_same) > 1e-3 / len(positions), p_same  # Bonferroni over positions
    assert min(p_wrong) < 1e-6, p_wrong
