"""Every registered model name. Importing this module registers them (`ardistill.api` adds it to the registry as a
catalogue, imported on the first lookup by name: the registry itself never imports the zoo)."""

from __future__ import annotations

from ardistill.models.llamagen.config import gpt_config
from ardistill.models.var.config import var_config
from ardistill.hub import HubFile
from ardistill.registry import ModelSpec, WeightFile, register_family, register_model

# Hub revision of each official repository: the one table to edit when a release moves. Commit hashes were read from
# the repositories' huggingface.co commit pages; a branch name means no commit could be confirmed (docs/weights.md).
HUB_REVISIONS = {
    # "add var_d36.pth" (jiangyi.enjoy, after "[upd] d20" 367386c of Apr 19 2024, the last change of var_d16–d30 and
    # vae_ch160v4096z32.pth): every VAR file ardistill registers.
    "FoundationVision/var": "6d0ee6598a42f75079aa79e58b012b57b284c91b",
    # "add c2i models" (Jun 5 2024): every c2i_*.pt and vq_ds16_c2i.pt (added in e467ee8, its ancestor); later commits
    # only touch README.md and add vq_ds16_c2i_training.pt.
    "FoundationVision/LlamaGen": "dc1fec543f6ac82e0cb9bbed058d5eaa26a30e6e",
    # No commit hash of this repository could be confirmed: "main" until one is (files as the DD README links them).
    "microsoft/distilled_decoding": "main",
}


def hub_file(repo_id: str, filename: str) -> HubFile:
    """A file of an official repository at its pinned revision."""
    return HubFile(repo_id, filename, revision=HUB_REVISIONS[repo_id])


def official_file(role: str, repo_id: str, path: str) -> WeightFile:
    return WeightFile(role, path.rsplit("/", 1)[-1], hub_file(repo_id, path))


# ---------------------------------------------------------------------------------------------------- VAR
VAR_PARAMS = {16: 310_283_520, 20: 600_920_320, 24: 1_033_396_224, 30: 2_010_040_320, 36: 2_353_900_000}
_VAE_FILE = official_file("tokenizer", "FoundationVision/var", "vae_ch160v4096z32.pth")
for _d in (16, 20, 24, 30, 36):
    _cfg = var_config(_d)
    register_model(
        ModelSpec(
            name=f"var-d{_d}",
            family="var",
            config=_cfg,
            files=(official_file("transformer", "FoundationVision/var", f"var_d{_d}.pth"), _VAE_FILE),
            description=f"VAR-d{_d} next-scale prediction (FoundationVision/VAR)",
            tokens_per_image=_cfg.seq_len,
            image_size=_cfg.vae.image_size,
            params=VAR_PARAMS[_d],
            # README FID protocol of the official repository.
            sampling_defaults=dict(cfg=1.5, top_k=900, top_p=0.96, temperature=1.0),
        )
    )

# ---------------------------------------------------------------------------------------------- LlamaGen
LLAMAGEN_PARAMS = {"B": 110_888_448, "L": 342_910_976, "XL": 774_699_520, "XXL": 1_410_972_672, "3B": 3_096_659_200}
# (size, image size) pairs of the released class-conditional checkpoints, with the official FID cfg.
_LLAMAGEN_RELEASES = [("B", 256, 2.0), ("B", 384, 2.0), ("L", 256, 2.0), ("L", 384, 2.0), ("XL", 384, 1.75), ("XXL", 384, 1.75), ("3B", 384, 1.65)]
_VQ_FILE = official_file("tokenizer", "FoundationVision/LlamaGen", "vq_ds16_c2i.pt")
for _size, _res, _cfg_scale in _LLAMAGEN_RELEASES:
    _cfg = gpt_config(_size, _res)
    _name = f"llamagen-{_size.lower()}" + ("" if _res == 256 or (_size not in ("B", "L")) else f"-{_res}")
    register_model(
        ModelSpec(
            name=_name,
            family="llamagen",
            config=_cfg,
            files=(official_file("transformer", "FoundationVision/LlamaGen", f"c2i_{_size}_{_res}.pt"), _VQ_FILE),
            description=f"LlamaGen-{_size} class-conditional GPT, {_res} px (FoundationVision/LlamaGen)",
            tokens_per_image=_cfg.block_size,
            image_size=_res,
            params=LLAMAGEN_PARAMS[_size],
            sampling_defaults=dict(cfg=_cfg_scale, top_k=0, top_p=1.0, temperature=1.0),
        )
    )


def _register_families() -> None:
    from ardistill.models.llamagen.checkpoint import guess_llamagen_checkpoint
    from ardistill.models.var.checkpoint import guess_var_checkpoint
    from ardistill.teachers.llamagen import load_llamagen_teacher
    from ardistill.teachers.var import load_var_teacher

    register_family("var", load_var_teacher, guess_var_checkpoint)
    register_family("llamagen", load_llamagen_teacher, guess_llamagen_checkpoint)


_register_families()


# ------------------------------------------------------------------------------------------- built-in models
# Every folder ardistill/weights/<name>/ with a model.json is a built-in model: its config, files and default
# sampling settings are written there by `ardistill teacher train` (see recipes/toy/).
def builtin_config_classes() -> dict:
    """family → config dataclass of the built-in models' model.json."""
    from ardistill.models.llamagen.config import GPTConfig
    from ardistill.models.var.config import VARConfig

    return {"var": VARConfig, "llamagen": GPTConfig}


def _register_builtins() -> None:
    import json

    from ardistill.configs import config_from_dict
    from ardistill.registry import PACKAGE_WEIGHTS

    config_classes = builtin_config_classes()
    if not PACKAGE_WEIGHTS.is_dir():
        return
    for card in sorted(PACKAGE_WEIGHTS.glob("*/model.json")):
        info = json.loads(card.read_text())
        cfg = config_from_dict(config_classes[info["family"]], info["config"], where=str(card))
        register_model(
            ModelSpec(
                name=info["name"],
                family=info["family"],
                config=cfg,
                files=tuple(WeightFile(role, fname) for role, fname in info["files"].items()),
                description=info.get("description", ""),
                builtin=True,
                tokens_per_image=int(info["tokens_per_image"]),
                image_size=int(info["image_size"]),
                params=int(info.get("params", 0)),
                sampling_defaults=dict(info.get("sampling_defaults", {})),
            )
        )


_register_builtins()


# ---------------------------------------------------------------------------------------- DD students (official)
# microsoft/distilled_decoding release files (paths as the DD GitHub README links them); t_list / split from the
# README's 2-step commands.


def _register_dd_students() -> None:
    from ardistill.models.dd.config import DDStudentConfig

    releases = [  # name, family, teacher, file, t_list, split, params (counted from the module)
        ("dd-var-d16", "var", "var-d16", "VAR-DD/var-d16.pth", (0, 5), 5, 328_165_664),
        ("dd-var-d20", "var", "var-d20", "VAR-DD/var-d20.pth", (0, 4), 4, 635_399_088),
        ("dd-var-d24", "var", "var-d24", "VAR-DD/var-d24.pth", (0, 4), 4, 1_092_478_560),
        ("dd-llamagen-b", "llamagen", "llamagen-b", "LlamaGen-DD/llamagen-B.pt", (0, 80), 80, 98_321_672),
        ("dd-llamagen-l", "llamagen", "llamagen-l", "LlamaGen-DD/llamagen-L.pt", (0, 80), 130, 326_155_272),
    ]
    for name, family, teacher, path, t_list, split, params in releases:
        register_model(
            ModelSpec(
                name=name,
                family=f"dd-{family}",
                config=DDStudentConfig(family=family, teacher=teacher, t_list=t_list, split=split),
                files=(official_file("student", "microsoft/distilled_decoding", path),),
                description=f"Distilled Decoding student of {teacher}, 1–2 steps (microsoft/distilled_decoding)",
                tokens_per_image=680 if family == "var" else 256,
                image_size=256,
                params=params,
                kind="student",
            )
        )


_register_dd_students()
