"""The command line: tiny runs on the bundled MNIST sample, resume, evaluate, Ctrl-C, errors.

Each subprocess pays TensorFlow's start-up (5-10 s), so the runs are few and tiny. One
training run, in a subprocess as a learner starts it, is shared; every test that changes a
run works on its own copy, so the tests pass in any order. Follow-up runs (a rerun, evaluate)
and bad cases run in-process through ``cli.main``; a new process where it is the point (the
same seed in a new process, Ctrl-C).
"""

import json
import math
import re
import shutil
import signal
import subprocess
import time

import pytest
from helpers import EPOCH_KEYS, one_cli_error_line, run_cli, run_cli_here, start_cli

import vae_tutorial as vt
from vae_tutorial import cli

TINY = [
    "--epochs",
    "1",
    "--intermediate-dim",
    "32",
    "--batch-size",
    "100",
    "--limit-train",
    "600",
    "--limit-test",
    "200",
]
# TensorFlow's own start-up lines on stderr (absl / glog format), not the CLI's.
TF_NOISE = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} )")


def own_stderr_lines(stderr: str) -> list[str]:
    """The CLI's lines on stderr, without TensorFlow's and the data's one NOTICE line."""
    lines = [line for line in stderr.splitlines() if line.strip() and not TF_NOISE.match(line)]
    notices = [line for line in lines if line.startswith("NOTICE: ")]
    assert len(notices) <= 1, notices
    return [line for line in lines if not line.startswith("NOTICE: ")]


def assert_one_error_line(result, code=None):
    assert result.returncode != 0, result.stdout + result.stderr
    if code is not None:
        assert result.returncode == code
    assert "Traceback" not in result.stderr, result.stderr
    lines = own_stderr_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


TRAIN = ["train", *TINY]  # MNIST: offline, the bundled sample


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One tiny training run (1 epoch), shared by the tests below; never modified."""
    out = tmp_path_factory.mktemp("cli") / "run"
    result = run_cli(*TRAIN, "--out", out)
    assert result.returncode == 0, result.stdout + result.stderr
    return out, result


@pytest.mark.slow
def test_the_same_seed_trains_the_same_model_in_a_new_process(trained_run, tmp_path):
    out, _ = trained_run
    again = run_cli(*TRAIN, "--out", tmp_path / "again", "--no-figures")
    assert again.returncode == 0, again.stdout + again.stderr
    first, second = (
        json.loads((d / "metrics.json").read_text())["epochs"] for d in (out, tmp_path / "again")
    )
    for key in ("train_loss", "test_elbo"):
        assert [e[key] for e in second] == pytest.approx([e[key] for e in first], rel=1e-6)


@pytest.fixture
def run_dir(trained_run, tmp_path):
    """A copy of the shared run, for a test to change."""
    out, result = trained_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    return copy, result


@pytest.mark.slow
def test_train_writes_metrics_config_checkpoint_and_figures(trained_run):
    out, result = trained_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "mnist"
    assert "bundled MNIST sample" in metrics["source"]
    assert metrics["finished"] is True
    config = metrics["config"]
    assert config == json.loads((out / "config.json").read_text())
    assert set(config) == {"data", "model", "training", "run"}
    assert vt.ModelConfig.from_dict(config["model"]) == vt.ModelConfig(
        kind="mlp", latent_dim=2, intermediate_dim=(32,)
    )
    assert vt.TrainingConfig(**config["training"]).epochs == 1
    assert config["data"]["dataset"] == "mnist" and config["run"]["out"] == str(out)
    [epoch] = metrics["epochs"]
    assert set(EPOCH_KEYS) <= set(epoch) and epoch["epoch"] == 1
    assert metrics["test_elbo"] == epoch["test_elbo"] < 0
    assert epoch["images_per_second"] > 0
    for name in ("loss_curves", "reconstructions", "samples", "latent_scatter", "manifold"):
        assert (out / f"{name}.png").stat().st_size > 1000, name
    assert list((out / "checkpoints").glob("ckpt-1.*"))
    assert "Test ELBO" in result.stdout


@pytest.mark.slow
def test_rerun_with_more_epochs_continues(run_dir, capsys, monkeypatch):
    out, _ = run_dir
    args = [*TRAIN, "--out", out]
    args[args.index("--epochs") + 1] = "2"
    result = run_cli_here(monkeypatch, capsys, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    assert metrics["config"]["training"]["epochs"] == 2 and metrics["finished"] is True

    # The same command again trains nothing new: same history, no new checkpoint.
    before = metrics["epochs"]
    again = run_cli_here(monkeypatch, capsys, *args)
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads((out / "metrics.json").read_text())["epochs"] == before
    assert not list((out / "checkpoints").glob("ckpt-3.*"))
    assert "epoch 3" not in again.stdout.lower()  # no epoch trained: no epoch line


@pytest.mark.slow
def test_evaluate_adds_iwae(run_dir, capsys, monkeypatch):
    out, _ = run_dir
    epochs_before = len(json.loads((out / "metrics.json").read_text())["epochs"])
    checkpoints_before = sorted(p.name for p in (out / "checkpoints").iterdir())
    result = run_cli_here(monkeypatch, capsys, "evaluate", "--out", out, "--k", "20",
                          "--max-images", "50")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    iwae = metrics["iwae"]
    assert iwae["k"] == 20 and iwae["images"] == 50
    # L_20 >= L_1 on average (loose: both are estimates on 50 images).
    assert iwae["elbo"] - 2.0 < iwae["log_likelihood"] < 0
    # binarized pixels: a proper likelihood, also in bits per pixel (784 of them, log base 2)
    assert iwae["bits_per_dim"] == pytest.approx(-iwae["log_likelihood"] / (784 * math.log(2)))
    assert "IWAE" in result.stdout
    assert f"<= {iwae['bits_per_dim']:.3f} bits per pixel" in result.stdout
    assert len(metrics["epochs"]) == epochs_before  # evaluating trains nothing
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == checkpoints_before


@pytest.mark.slow
def test_evaluate_gives_no_bits_for_a_bernoulli_on_grey_levels(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VAE_TUTORIAL_OFFLINE", "1")
    out = tmp_path / "grey"
    assert cli.main([*TRAIN, "--binarize", "none", "--no-figures", "--out", str(out)]) == 0
    assert cli.main(["evaluate", "--out", str(out), "--k", "2", "--max-images", "20"]) == 0
    assert json.loads((out / "metrics.json").read_text())["iwae"]["bits_per_dim"] is None
    assert "bits per pixel" not in capsys.readouterr().out  # not a likelihood of grey levels


@pytest.mark.slow
def test_changed_model_shape_asks_for_a_new_out(trained_run, capsys, monkeypatch):
    out, _ = trained_run
    monkeypatch.setenv("VAE_TUTORIAL_OFFLINE", "1")
    args = [*TRAIN, "--out", out]
    args[args.index("--intermediate-dim") + 1] = "64"
    line = one_cli_error_line(args, capsys)
    assert "--out" in line and "intermediate_dim" in line


def test_missing_data_dir_is_one_error_line(tmp_path, capsys, monkeypatch):
    # (Offline without a data directory is no error: each dataset has a bundled sample.)
    monkeypatch.setenv("VAE_TUTORIAL_OFFLINE", "1")
    monkeypatch.delenv("VAE_TUTORIAL_DATA_DIR", raising=False)
    train = ["train", "--dataset", "fashion_mnist", "--out", tmp_path / "run", *TINY]
    line = one_cli_error_line([*train, "--data-dir", tmp_path / "nowhere"], capsys)
    assert "nowhere" in line


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--dataset", "cifar10"],
        ["train", "--epochs", "0"],
        ["train", "--epochs", "two"],
        ["train", "--intermediate-dim", "512,x"],
        ["train", "--learning-rate", "nan"],
        ["train", "--beta", "-1"],
        ["train", "--conv", "--intermediate-dim", "64"],
        ["evaluate"],
        ["evaluate", "--out", "does/not/exist"],
        [],
    ],
)
def test_bad_flags_one_error_line(args, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    one_cli_error_line(args, capsys)


def _fake_fit(error):
    def fit(*args, **kwargs):
        raise error

    return fit


# Ctrl-C while pybind11 converts a TensorFlow error reaches Python as this RuntimeError.
WRAPPED_INTERRUPT = RuntimeError(
    "pybind11::error_already_set: MISMATCH of original and normalized active exception types: "
    "ORIGINAL InvalidArgumentError REPLACED BY KeyboardInterrupt"
)


@pytest.mark.parametrize("which", ["interrupt", "wrapped interrupt", "nan"])
def test_interrupted_or_diverged_run_keeps_checkpoint_message(which, capsys, tmp_path, monkeypatch):
    import vae_tutorial
    from vae_tutorial import training

    if which == "interrupt":
        error = KeyboardInterrupt()
    elif which == "wrapped interrupt":
        error = WRAPPED_INTERRUPT
    else:
        error = training.NonFiniteLossError(
            "the training loss became NaN or Inf at epoch 1, step 3 of 6.",
            epoch=1,
            step=3,
            checkpoint=None,
            history=[],
        )
    monkeypatch.setattr(vae_tutorial, "fit", _fake_fit(error))
    monkeypatch.setenv("VAE_TUTORIAL_OFFLINE", "1")
    out = tmp_path / "run"
    code = cli.main([*TRAIN, "--out", str(out)])
    captured = capsys.readouterr()
    [notice] = [line for line in captured.out.splitlines() if line.startswith("NOTICE: ")]
    err = [line for line in captured.err.splitlines() if line.strip()]
    assert notice.startswith("NOTICE: using the bundled MNIST sample")
    assert code == (1 if which == "nan" else 130)
    assert len(err) == 1 and err[0].startswith("error: ")
    assert "checkpoint" in err[0] and "resume" in err[0]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["finished"] is False and metrics["epochs"] == []


def test_a_runtime_error_that_is_not_an_interrupt_is_not_reported_as_one(tmp_path, monkeypatch):
    import vae_tutorial

    monkeypatch.setattr(vae_tutorial, "fit", _fake_fit(RuntimeError("a bug")))
    monkeypatch.setenv("VAE_TUTORIAL_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main([*TRAIN, "--out", str(tmp_path / "run")])


@pytest.mark.slow
def test_ctrl_c_mid_epoch_keeps_every_finished_epoch_and_the_rerun_resumes(tmp_path):
    out = tmp_path / "run"
    args = ["train", *TINY, "--out", out, "--no-figures"]
    args[args.index("--epochs") + 1] = "50"
    args[args.index("--batch-size") + 1] = "8"
    args[args.index("--limit-train") + 1] = "8000"  # 1,000 steps per epoch: a second or more
    child = start_cli(*args)
    try:
        deadline = time.monotonic() + 180
        # metrics.json appears after the first epoch, while the run goes on.
        while not (out / "metrics.json").is_file():
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "no metrics.json after 180 s"
            time.sleep(0.05)
        time.sleep(0.3)  # into the next epoch
        child.send_signal(signal.SIGINT)
        stdout, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, stdout + stderr
    line = assert_one_error_line(
        subprocess.CompletedProcess(args, child.returncode, stdout, stderr), code=130
    )
    assert "interrupted" in line and "resume" in line
    metrics = json.loads((out / "metrics.json").read_text())
    done = len(metrics["epochs"])
    assert done >= 1 and metrics["finished"] is False
    assert list((out / "checkpoints").glob(f"ckpt-{done}.index"))
    assert not list((out / "checkpoints").glob(f"ckpt-{done + 1}.index"))

    args[args.index("--epochs") + 1] = str(done + 1)
    result = run_cli(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Resumed from {out / 'checkpoints' / f'ckpt-{done}'}" in result.stdout
    again = json.loads((out / "metrics.json").read_text())
    assert again["epochs"][:done] == metrics["epochs"] and len(again["epochs"]) == done + 1


@pytest.mark.slow
def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(run_dir, capsys, monkeypatch):
    out, _ = run_dir
    args = [*TRAIN, "--out", out, "--no-figures"]
    args[args.index("--epochs") + 1] = "2"
    assert run_cli_here(monkeypatch, capsys, *args).returncode == 0
    [data_file] = (out / "checkpoints").glob("ckpt-2.data-*")
    data_file.write_bytes(data_file.read_bytes()[:100])  # a crash during the save
    args[args.index("--epochs") + 1] = "3"
    result = run_cli_here(monkeypatch, capsys, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    notes = [line for line in result.stdout.splitlines() if line.startswith("Checkpoint ")]
    assert len(notes) == 1 and "ckpt-2 is damaged" in notes[0], result.stdout
    assert "Resumed from" in result.stdout and "ckpt-1" in result.stdout
    assert (out / "checkpoints" / "damaged" / data_file.name).stat().st_size == 100  # kept
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3]
