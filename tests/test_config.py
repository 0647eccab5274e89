"""minisnn.config: every setting has one resume rule, and the rule does what the table says."""
import dataclasses

import pytest

from minisnn import cli, config
from minisnn.config import CONTINUE, FIXED, RUN, TrainConfig, resume_config


def test_every_setting_has_a_resume_rule():
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    assert sorted(config.RESUME) == sorted(names)
    assert set(config.RESUME.values()) == {FIXED, CONTINUE, RUN}


def test_the_rule_is_stated_in_the_docstring_and_in_help(capsys):
    for kind in (FIXED, CONTINUE, RUN):
        assert f"\n    {kind} " in config.__doc__
    assert cli.main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for kind, lead in ((FIXED, "refused if given otherwise: "), (CONTINUE, "unless given: "),
                       (RUN, "never the checkpoint's: ")):
        names = config.settings_of_kind(kind)
        shown = [f"--{n.replace('_', '-')}" if n not in ("betas", "num_inputs", "num_outputs",
                                                         "eval_batch_size") else n for n in names]
        assert lead + ", ".join(shown) in text


def test_resume_config_applies_each_kind():
    saved = TrainConfig(hidden=20, steps=5, lr=1e-3, batch_size=32, epochs=4, max_iters=7,
                        report_every=3)
    cfg = resume_config(saved, {"lr": 2e-3, "hidden": 20, "max_iters": 2})
    assert (cfg.hidden, cfg.steps) == (20, 5)                      # fixed: the checkpoint's
    assert (cfg.lr, cfg.batch_size) == (2e-3, 32)                  # continue: given, else saved
    assert (cfg.epochs, cfg.max_iters, cfg.report_every) == (1, 2, 50)   # run: given or default
    kept = resume_config(saved, {}, keep_run=True)
    assert kept == saved
    with pytest.raises(config.ConfigError, match=r"cannot change --steps 6 \(the checkpoint has "
                       r"5\); --seed 1 \(the checkpoint has 0\): these define"):
        resume_config(saved, {"steps": 6, "seed": 1, "lr": 1.0}, flag=config.flag)
    with pytest.raises(config.ConfigError, match="unknown settings"):
        resume_config(saved, {"colour": 1})


def test_progress_reads_checkpoints_that_counted_batches():
    old = {"epoch": 1, "batch": 3, "iteration": 13, "batch_size": 32}
    assert config.Progress.from_meta(old) == config.Progress(1, 96, 13)
    assert config.Progress.from_meta(config.Progress(2, 5, 9).to_meta()) == config.Progress(2, 5, 9)
