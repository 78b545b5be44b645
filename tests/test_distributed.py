"""fit under tf.distribute: MirroredStrategy on 2 logical CPUs equals a plain loop on the same
global batches; MultiWorkerMirroredStrategy with two local worker processes trains and resumes
after both are killed; refusals; a GPU run where one exists.

The reference is a plain GradientTape loop with no strategy at all: the batch mean of the
per-example negative ELBO on the same batches and noise, and Keras' Adam. Logical CPU devices
must be configured before TensorFlow starts, so those checks run in a fresh process.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from distributed_reference import SETTINGS, TEST, TRAIN, max_difference, new_model, reference

import vae_tutorial as vt
from vae_tutorial.cli import main as cli_main
from vae_tutorial.distributed import batches_with_noise, is_chief

REPO = Path(__file__).resolve().parents[1]
PHASE_SECONDS = 240  # bound on each multi-worker phase (two TensorFlow start-ups included)

# In a fresh process: 2 logical CPUs must be configured before TensorFlow starts.
TWO_CPUS = f"""
import json, sys
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
import vae_tutorial as vt
import tensorflow as tf
from distributed_reference import SETTINGS, TEST, TRAIN, max_difference, new_model, reference

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
model = new_model()
config = vt.TrainingConfig(**SETTINGS)
history = vt.fit(model, TRAIN, TEST, config, strategy=strategy, progress=False)
plain, plain_elbo = reference()
print(json.dumps({{
    "replicas": strategy.num_replicas_in_sync,
    "weights": max_difference(model, plain),
    "test_elbo": history[-1]["test_elbo"],
    "reference_elbo": plain_elbo,
}}))
"""


@pytest.mark.slow
def test_mirrored_on_two_cpus_equals_the_plain_loop_on_the_same_global_batches():
    result = subprocess.run(
        [sys.executable, "-c", TWO_CPUS],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, "VAE_TUTORIAL_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    # 10 Adam steps in float32, the sums in another order: agreement to about 1e-7
    assert report["weights"] < 1e-5, report
    # the held-out ELBO, summed across the replicas, is the mean over every held-out image
    assert report["test_elbo"] == pytest.approx(report["reference_elbo"], rel=1e-6)


def test_per_example_noise_does_not_depend_on_the_split():
    """The noise of an image is fixed by (seed, epoch, batch): the same for any batch size of
    the model, and N(0, 1) in distribution (mean and variance within 4 standard errors)."""
    model = new_model()
    batches = list(
        batches_with_noise(model, TRAIN, batch_size=64, binarize="none", seed=3, epoch=1)
    )
    again = list(batches_with_noise(model, TRAIN, batch_size=64, binarize="none", seed=3, epoch=1))
    other_epoch = next(
        iter(batches_with_noise(model, TRAIN, batch_size=64, binarize="none", seed=3, epoch=2))
    )
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(batches, again, strict=True))
    assert not np.array_equal(batches[0][1], other_epoch[1])
    eps = np.concatenate([e.numpy() for _, e in batches]).ravel()
    n = eps.size
    assert abs(eps.mean()) < 4 / np.sqrt(n)
    assert abs(eps.var() - 1) < 4 * np.sqrt(2 / n)
    assert [x.shape[0] for x, _ in batches] == [64, 64, 64, 64, 44]


def test_fit_refuses_what_a_strategy_cannot_train():
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    built = new_model()
    built(tf.zeros([1, 784]))
    with pytest.raises(ValueError, match="outside strategy.scope"):
        vt.fit(built, TRAIN, config=vt.TrainingConfig(epochs=1), strategy=strategy, progress=False)
    with pytest.raises(ValueError, match="outside strategy.scope"):
        vt.fit(
            new_model(),
            TRAIN,
            config=vt.TrainingConfig(epochs=1),
            optimizer=keras.optimizers.Adam(),
            strategy=strategy,
            progress=False,
        )
    with pytest.raises(TypeError, match="tf.distribute.Strategy"):
        vt.fit(
            new_model(),
            TRAIN,
            config=vt.TrainingConfig(epochs=1),
            strategy="mirrored",
            progress=False,
        )
    with pytest.raises(ValueError, match="without a strategy"):
        vt.fit(new_model(), TRAIN, strategy=strategy, jit_compile=True, progress=False)
    with pytest.raises(ValueError, match="free_bits=0 with a strategy"):
        vt.fit(
            new_model(),
            TRAIN,
            config=vt.TrainingConfig(free_bits=0.5, epochs=1),
            strategy=strategy,
            progress=False,
        )
    labels = np.arange(len(TRAIN)) % 10
    with pytest.raises(ValueError, match="ConditionalVAE without a strategy"):
        vt.fit(
            vt.ConditionalVAE(latent_dim=2, intermediate_dim=8),
            (TRAIN, labels),
            config=vt.TrainingConfig(epochs=1),
            strategy=strategy,
            progress=False,
        )


def _resolver(cluster, task_type, task_id):
    spec = tf.train.ClusterSpec(cluster)
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        spec, task_type=task_type, task_id=task_id
    )
    return types.SimpleNamespace(cluster_resolver=resolver)


def test_only_the_chief_writes():
    workers = {"worker": ["a:1", "b:2"]}
    assert is_chief(None)
    assert is_chief(tf.distribute.OneDeviceStrategy("/cpu:0"))
    assert is_chief(_resolver(workers, "worker", 0))
    assert not is_chief(_resolver(workers, "worker", 1))
    with_chief = {"chief": ["c:3"], **workers}
    assert is_chief(_resolver(with_chief, "chief", 0))
    assert not is_chief(_resolver(with_chief, "worker", 0))


# --------------------------------------------------------------------------------------------
# Two worker processes on this machine


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _start_workers(out: Path, epochs: int, logs: Path, phase: str):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    workers = []
    for index in range(2):
        config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(config), "VAE_TUTORIAL_OFFLINE": "1"}
        log = open(logs / f"{phase}-worker{index}.log", "w")  # noqa: SIM115 - closed below
        command = [
            sys.executable, "-m", "vae_tutorial", "train", "--strategy", "multi-worker",
            "--out", str(out), "--epochs", str(epochs), "--limit-train", "1024",
            "--limit-test", "256", "--intermediate-dim", "32", "--batch-size", "64",
            "--no-figures",
        ]  # fmt: skip
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        workers.append((process, log))
    return workers


def _stop(workers):
    for process, log in workers:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        log.close()


def _logs(logs: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(logs.glob("*.log")))


@pytest.mark.slow
def test_multi_worker_cli_trains_and_resumes_after_both_workers_are_killed(tmp_path):
    out, logs = tmp_path / "run", tmp_path / "logs"
    logs.mkdir()
    # Phase 1: train toward 100 epochs; kill both workers once the chief has saved one.
    workers = _start_workers(out, 100, logs, "first")
    try:
        deadline = time.monotonic() + PHASE_SECONDS
        while tf.train.latest_checkpoint(str(out / "checkpoints")) is None:
            assert time.monotonic() < deadline, "no checkpoint in time\n" + _logs(logs)
            assert all(p.poll() is None for p, _ in workers), "a worker exited\n" + _logs(logs)
            time.sleep(0.2)
    finally:
        _stop(workers)
    done = len(vt.checkpoints.read_history(tf.train.latest_checkpoint(str(out / "checkpoints"))))
    assert 1 <= done < 100
    metrics = json.loads((out / "metrics.json").read_text())
    assert not metrics["finished"] and metrics["config"]["run"]["strategy"] == "multi-worker"
    assert not list(out.glob("*.png"))  # --no-figures

    # Phase 2: the same command, one more epoch: both workers resume from the chief's files.
    workers = _start_workers(out, done + 1, logs, "second")
    try:
        for process, _ in workers:
            process.wait(timeout=PHASE_SECONDS)
    finally:
        _stop(workers)
    assert all(p.returncode == 0 for p, _ in workers), _logs(logs)
    for index in range(2):
        text = (logs / f"second-worker{index}.log").read_text()
        assert f"{done} epoch(s) done" in text, _logs(logs)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["finished"] and [h["epoch"] for h in metrics["epochs"]] == list(
        range(1, done + 2)
    )
    assert "This worker trained" in (logs / "second-worker1.log").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["checkpoints", "config.json", "metrics.json"]


@pytest.mark.skipif(
    not tf.config.list_physical_devices("GPU"),
    reason="no GPU on this machine: MirroredStrategy over GPUs is exercised only where one exists",
)
def test_mirrored_on_the_gpus_equals_the_plain_loop():
    strategy = tf.distribute.MirroredStrategy()
    model = new_model()
    history = vt.fit(
        model, TRAIN, TEST, vt.TrainingConfig(**SETTINGS), strategy=strategy, progress=False
    )
    plain, plain_elbo = reference()
    assert max_difference(model, plain) < 1e-4  # GPU kernels differ from the CPU's
    assert history[-1]["test_elbo"] == pytest.approx(plain_elbo, rel=1e-4)


def test_multi_worker_without_tf_config_is_refused_with_the_fix(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    code = cli_main(["train", "--strategy", "multi-worker", "--out", str(tmp_path / "run")])
    error = capsys.readouterr().err
    assert code == 2 and "TF_CONFIG" in error and '"task"' in error
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_cli_trains_under_mirrored_strategy(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VAE_TUTORIAL_OFFLINE", "1")
    out = tmp_path / "run"
    args = ["train", "--strategy", "mirrored", "--out", str(out), "--epochs", "1"]
    args += ["--limit-train", "256", "--limit-test", "128", "--intermediate-dim", "16"]
    assert cli_main([*args, "--no-figures"]) == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["finished"] and metrics["config"]["run"]["strategy"] == "mirrored"
    assert np.isfinite(metrics["test_elbo"])
