"""`binwrn-run --help`: what the command does, examples, the config groups (read from conf/)
and the sibling commands. Hydra's own help stays at `binwrn-run --hydra-help`."""

from __future__ import annotations

import textwrap
from pathlib import Path

from omegaconf import OmegaConf

# Each line is in README.md (tests/test_run_help.py keeps them there).
EXAMPLES = (
    ("binwrn-run", "the paper's headline: CIFAR-10, WRN-20-10, 1-bit, 254 epochs"),
    ("binwrn-run dataset=cifar100 model.bits=1 bn.learn_affine=false", ""),
    ("binwrn-run dataset=cifar10 data.root=/data/cifar10-png model.depth=10 model.width=1 "
     "trainer.max_epochs=1", "a small net for one epoch"),
    ("binwrn-run experiment=p1_t1_1bit_20-10 dataset=cifar100", "a Table 1 row"),
    ("binwrn-run experiment=p1_t2_1bit_imagenet_18-2.5 data.root=/data/imagenet",
     "ImageNet, 18-2.5"),
    ("binwrn-run experiment=p2_1bit_srelu", "paper 2: 1-bit, no BN, 300-epoch cosine"),
    ("binwrn-run -m model.bits=32,1 seed=0,1,2", "a Hydra multirun: 6 jobs, one table"),
    ("binwrn-run --cfg job", "print the composed config (no run)"),
    ("binwrn-run trainer=ddp trainer.devices=4", "4 GPUs of one machine"),
    ("binwrn-run experiment=p3_resnet20 iterative.order=forward",
     "paper 3: binarize layer by layer"),
)

SIBLINGS = (
    ("binwrn-sweep", "a sweep file from sweeps/ as one parent run, finished jobs skipped"),
    ("binwrn-report", "tables and figures of a sweep's or an experiment's runs"),
    ("binwrn-export", "pack a trained 1-bit run into a .bwn file and/or ONNX, with its size"),
    ("binwrn-eval", "test accuracy of a packed .bwn model (torch, NumPy or ONNX runtime)"),
    ("binwrn-bench", "step times (binwrn vs plain PyTorch) and command to first step"),
    ("binwrn-server", "a shared tracking server: MLflow on PostgreSQL (make server)"),
    ("binwrn-migrate", "copy every run of one tracking store into another"),
    ("binwrn-sensitivity", "paper 3's per-layer sensitivity ranking"),
    ("binwrn-gpucheck", "the GPU check: correctness, speed and accuracy (make gpu-check)"),
)

ABOUT = (
    "Train a Wide ResNet with full-precision or 1-bit weights (McDonnell 2018; papers 2 and "
    "3) as the config under conf/ says, recompute its BN statistics, test it on the whole "
    "test set and record the run in MLflow: params, curves, checkpoints, a size report and a "
    "figure (tracking.uri, default sqlite:///mlflow.db). The same command continues an "
    "unfinished run of the same config from its last checkpoint. With -m, every combination "
    "of comma-separated values is a job, and a table compares the jobs at the end."
)


def _defaults(conf: Path) -> dict[str, str]:
    """group -> the option config.yaml picks for it."""
    picked = {}
    for entry in OmegaConf.load(conf / "config.yaml").get("defaults", []):
        if OmegaConf.is_dict(entry):
            for group, option in entry.items():
                picked[str(group)] = str(option)
    return picked


def _wrap(text: str, indent: int, width: int = 96) -> str:
    return textwrap.fill(text, width, initial_indent=" " * indent,
                         subsequent_indent=" " * indent, break_on_hyphens=False)


def run_help(conf: Path) -> str:
    from binwrn.configuration.compose import group_options

    picked = _defaults(conf)
    lines = ["usage: binwrn-run [-m] [group=option ...] [key=value ...]", "",
             _wrap(ABOUT, 0), "", "examples:"]
    for command, note in EXAMPLES:
        lines.append(f"  {command}" + (f"\n      # {note}" if note else ""))
    lines += ["", "config groups (conf/; pick one option with group=option; * = default):"]
    for group, options in group_options(conf).items():
        shown = ", ".join(f"{o}*" if o == picked.get(group) else o for o in options)
        lines.append(f"  {group:<12}" + _wrap(shown, 14)[14:])
    lines += ["", _wrap("settings: any key of the composed config, e.g. model.bits=1 "
                        "model.width=4 trainer.max_epochs=30 data.root=/data/cifar10; "
                        "`binwrn-run --cfg job [overrides]` prints every key and value. "
                        "verbose=true also prints the config and the libraries' INFO logs "
                        "during a run.", 0),
              "", "sibling commands (each has --help):"]
    lines += [f"  {name:<19} {what}" for name, what in SIBLINGS]
    lines += ["", "Hydra's own flags (--cfg, --info, --multirun, ...): binwrn-run --hydra-help"]
    return "\n".join(lines)
