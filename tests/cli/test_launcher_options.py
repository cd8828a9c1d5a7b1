"""Every option of every command survives `torchrun ... -m ardistill CMD ...` unchanged.

torchrun's parser (argparse, abbreviations on) reads the whole command line: an option of ours that equals or is a
prefix of one of torchrun's (`--num` → `--numa-binding`, `--log` → `--log-dir`) is taken by torchrun, so it stops with
"ambiguous option" or swallows the option. The option strings come from the installed torch, not from a copy.
"""

import pytest
from torch.distributed.run import get_args_parser

from ardistill.cli import main
from cli_walk import options, walk_commands

TORCHRUN = sorted({s for action in get_args_parser()._actions for s in action.option_strings})
HELP = ("-h", "--help")  # torchrun's own too, but after the script they are passed on (checked below)


def run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def _all_option_strings():
    """[(command path, option string, takes a value, hidden)] over every command of the app."""
    rows = []
    for path, cmd in walk_commands():
        for p in options(cmd):
            for s in (*p.opts, *p.secondary_opts):
                rows.append((path, s, not p.is_flag, p.hidden))
    return rows


def _through_torchrun(script_args):
    args = get_args_parser().parse_args(["--nproc-per-node", "2", "-m", "ardistill", *script_args])
    assert args.module and args.training_script == "ardistill"
    return args.training_script_args


def test_the_parser_is_torchruns_and_the_check_can_fail():
    assert "--numa-binding" in TORCHRUN and "-t" in TORCHRUN and "-r" in TORCHRUN and "--nproc-per-node" in TORCHRUN
    with pytest.raises(SystemExit):  # the bug this file guards against: --num is ambiguous for torchrun
        _through_torchrun(["trajectories", "--num", "5"])


def test_no_visible_option_collides_with_torchrun():
    rows = _all_option_strings()
    assert len({s for _, s, _, _ in rows}) > 50  # the walk really reached the subcommands' options
    bad = [f"ardistill {' '.join(path)} {s} (torchrun: {', '.join(t for t in TORCHRUN if t.startswith(s))})"
           for path, s, _, hidden in rows if not hidden and any(t.startswith(s) for t in TORCHRUN)]
    assert not bad, "options torchrun's parser would take:\n" + "\n".join(bad)


def test_hidden_options_are_only_the_renamed_spellings_refused_with_a_hint(capsys):
    hidden = [(path, s, takes_value) for path, s, takes_value, h in _all_option_strings() if h]
    # renamed spellings (--num, -t, -r), and `teacher eval --batch-size`, removed because it changed which samples
    # were drawn (the evaluation protocol fixes the chunks)
    assert {s for _, s, _ in hidden} == {"--num", "-t", "-r", "--batch-size"}
    for path, s, takes_value in hidden:
        code, _, err = run([*path, s, *(["1"] if takes_value else [])], capsys)
        hint = f"{s} is now --" in err or f"{s} is gone" in err
        assert code == 2 and hint and len(err.strip().splitlines()) == 1, (path, s, err)


def test_every_option_passes_through_torchruns_parser_unchanged():
    for path, s, takes_value, hidden in _all_option_strings():
        if hidden:
            continue
        tail = [*path, s, *(["7"] if takes_value else [])]
        assert _through_torchrun(tail) == tail
    for path, _ in walk_commands():
        for h in HELP:
            assert _through_torchrun([*path, h]) == [*path, h]


@pytest.mark.parametrize("script_args", [
    ["trajectories", "--teacher", "var-d16", "--num-samples", "1200000", "--out", "data/dd", "--cfg", "2.0", "--top-k", "900",
     "--top-p", "0.95", "--cfg-interval", "-1", "--flow-steps", "200", "--device", "cuda", "--seed", "3"],
    ["trajectories", "-n", "5", "-o", "d", "--teacher", "var-toy-l", "--random-init"],
    ["sample", "--teacher", "var-d16", "--class", "207", "-c", "1", "--num-images", "8", "-n", "8", "--out", "g.png", "-o", "g.png",
     "--top-k", "900", "--save-tokens", "--nrow", "4", "--dtype", "bf16", "--fast", "--compile", "auto"],
    ["bench", "--teacher", "var-toy-l", "--fid", "--num-samples", "1000", "--no-grids", "--random-init", "--dd-steps", "1,2"],
    ["train", "--recipe", "dd/var-toy-l", "--resume", "--steps", "10", "--out", "runs/x"],
    ["distill", "--teacher", "var-toy-l", "--num-trajectories", "100", "--train-steps", "5", "--fid-samples", "0"],
    ["code", "finetune", "--recipe", "code/var-toy", "--stage", "drafter"],
    ["code", "sweep", "--drafter", "var-toy-l", "--refiner", "var-toy-s", "--num-images", "100", "--label", "x"],
])
def test_documented_command_lines_come_through_unchanged(script_args):
    assert _through_torchrun(script_args) == script_args
