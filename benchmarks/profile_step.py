"""Where fit's training step spends its time: a profile of the XLA loop, part by part.

    python benchmarks/profile_step.py [--config a|b|d|cli] [--binarize MODE] [--optimizer adam|sgd]
                                      [--data-dir DIR]

Trains two epochs with ``vt.fit`` (XLA compiles in the first; their times are printed), then
one profiled epoch under TensorFlow's profiler with XLA:CPU's per-instruction trace events
on. It also counts, per part, the fusions XLA generates machine code for (what its compilation
spends most of its time on); ``--optimizer sgd`` shows what Adam's update adds to them and to
the first epoch. Every executed XLA instruction (a matmul, a fusion of element-wise ops, a copy) is
attributed to the TensorFlow op at its root, read from the optimized HLO's metadata, and the
ops are grouped into the parts of a step. The figures are thread time per step summed over
TensorFlow's worker threads: with two cores busy at once, the parts add up to more than the
wall time.

Configurations, as in bench_training.py: (a) 784-128-2, batch 32; (b) 784-512-512-20,
batch 1024; (d) 784-400-20, batch 128; cli: the CLI's default 784-512-2, batch 128.
Fashion-MNIST is read from --data-dir (default: ../shared/data beside the repository).
"""

from __future__ import annotations

import argparse
import atexit
import collections
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

DUMP = tempfile.mkdtemp(prefix="vae-profile-")
atexit.register(shutil.rmtree, DUMP, ignore_errors=True)
# Set before TensorFlow starts XLA: dump the optimized HLO, trace every XLA:CPU instruction.
os.environ["XLA_FLAGS"] = (
    f"{os.environ.get('XLA_FLAGS', '')} --xla_dump_to={DUMP} --xla_dump_hlo_as_text "
    "--xla_cpu_enable_xprof_traceme=true"
)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("VAE_TUTORIAL_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {  # hidden widths, latent size, batch size, images in the profiled epoch
    "a": ([128], 2, 32, 12_000),
    "b": ([512, 512], 20, 1024, 60_000),
    "cli": ([512], 2, 128, 60_000),
    "d": ([400], 20, 128, 60_000),
}
# Parts of a step, by the TensorFlow op name at the root of each XLA instruction (first match).
PARTS = [
    ("the optimizer's update", re.compile(r"(^|/)(adam|sgd)/")),
    ("the noise eps (keras.random.normal)", re.compile(r"stateless_random|StatelessRandom")),
    ("backward pass (gradients)", re.compile(r"^gradient_tape/")),
    ("forward pass (encoder, decoder)", re.compile(r"^while/vae")),
    ("batch: gather and binarize", re.compile(r"^while/batch/")),
]
REST = "loss and loop bookkeeping"
INSTRUCTION = re.compile(r'^\s+(?:ROOT )?%(\S+) = .*?\bop_name="([^"]*)"')
FUSION = re.compile(r'^\s+(?:ROOT )?%\S+ = .*? fusion\((?:.*?\bop_name="([^"]*)")?')


def loop_hlo(dump: str) -> list[str]:
    """The lines of the training loop's optimized HLO."""
    texts = [f.read_text() for f in Path(dump).glob("*cpu_after_optimizations.txt")]
    loops = [text for text in texts if "while" in text]
    if not loops:
        raise SystemExit(f"error: no optimized HLO of fit's loop was dumped into {dump}")
    return max(loops, key=len).splitlines()


def instruction_ops(hlo: list[str]) -> dict[str, str]:
    """HLO instruction name -> TensorFlow op name."""
    return {m.group(1): m.group(2) for m in map(INSTRUCTION.match, hlo) if m}


def fusions_by_part(hlo: list[str]) -> collections.Counter:
    """How many fusions (each a kernel XLA generates code for) each part of a step has."""
    return collections.Counter(part_of(m.group(1)) for m in map(FUSION.match, hlo) if m)


def event_times(trace_dir: str) -> collections.Counter:
    """Per trace-event name, picoseconds summed over TensorFlow's intra-op worker threads."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    (path,) = Path(trace_dir).rglob("*.xplane.pb")
    space.ParseFromString(path.read_bytes())
    times: collections.Counter = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if "Eigen" in line.name:
                for event in line.events:
                    times[plane.event_metadata[event.metadata_id].name] += event.duration_ps
    return times


def profiled_epoch(fit_one_epoch) -> tuple[dict, str]:
    """One epoch under TensorFlow's profiler: its history record and the trace's folder."""
    import tensorflow as tf

    trace_dir = tempfile.mkdtemp(prefix="vae-trace-", dir=DUMP)
    tf.profiler.experimental.start(trace_dir)
    try:
        (record,) = fit_one_epoch()
    finally:
        tf.profiler.experimental.stop()
    return record, trace_dir


def part_of(op_name: str | None) -> str:
    if op_name is None:
        return "copies and reductions XLA added"
    return next((name for name, pattern in PARTS if pattern.search(op_name)), REST)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="a")
    parser.add_argument("--binarize", default=None, help="default: none for a and b, else dynamic")
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args(argv)

    import keras

    import vae_tutorial as vt

    hidden, latent, batch_size, n = CONFIGS[args.config]
    binarize = args.binarize or ("dynamic" if args.config == "cli" else "none")
    images = vt.load_dataset("fashion_mnist", args.data_dir).train_images[:n]
    model = vt.VAE(latent_dim=latent, intermediate_dim=hidden, seed=0)
    optimizer = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}[args.optimizer](1e-3)
    config = vt.TrainingConfig(epochs=1, batch_size=batch_size, binarize=binarize)

    def fit_one_epoch():
        return vt.fit(model, images, config=config, optimizer=optimizer, progress=False)

    (first,) = fit_one_epoch()  # tracing and XLA's compilation happen here
    (second,) = fit_one_epoch()
    record, trace_dir = profiled_epoch(fit_one_epoch)
    times = event_times(trace_dir)
    thunks = times.pop("ThunkExecutor::Execute", 0)  # their whole time running XLA's code

    steps = len(images) // batch_size  # the full batches: the XLA loop's steps
    hlo = loop_hlo(DUMP)
    ops = instruction_ops(hlo)
    parts: collections.Counter = collections.Counter()
    for name, picoseconds in times.items():
        if name in ops or re.match(r"(copy|wrapped_|[a-z-]+_fusion)", name):
            parts[part_of(ops.get(name))] += picoseconds
    parts["between instructions (scheduling, waits)"] = thunks - sum(parts.values())

    layers = "-".join(map(str, [784, *hidden, latent]))
    print(
        f"fit's XLA step, {layers}, batch {batch_size}, binarize={binarize}, {args.optimizer}: "
        f"{1e6 * record['seconds'] / steps:,.0f} us per step wall time "
        f"({record['images_per_second']:,.0f} images/s, {steps} steps, profiler on)"
    )
    print(f"thread time per step, summed over TensorFlow's worker threads ({os.cpu_count()} CPUs):")
    total = sum(parts.values())
    for name, picoseconds in parts.most_common():
        share = 100 * picoseconds / total
        print(f"  {name:<44} {picoseconds / 1e6 / steps:>9,.0f} us  {share:5.1f}%")
    print(f"  {'all XLA work':<44} {total / 1e6 / steps:>9,.0f} us")
    fusions = fusions_by_part(hlo)
    print(f"fusions XLA compiled for the loop: {sum(fusions.values())}, of which")
    for name, count in fusions.most_common():
        print(f"  {name:<44} {count:>4}")
    print(
        f"first epoch {first['seconds']:.2f} s, second {second['seconds']:.2f} s (profiler off): "
        f"the first pays {first['seconds'] - second['seconds']:.2f} s for tracing the loop, "
        "XLA's compilation and the first eager run of the last, smaller batch"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
