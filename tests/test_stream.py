"""Training recipes (`train:`), transforms, schedules, RecordIO and streamed data: recipes refused at their line,
transforms checked against numpy written here, schedules against their closed forms, RecordIO against MXNet's own
reader, and runs killed with SIGKILL (at a step chosen by a test-only hook) that resume bit for bit."""
import json
import math
import os
import subprocess
import sys

import numpy as onp
import pytest
from PIL import Image

from archspec.cli import main
from archspec.spec.diagnostics import InputError
from archspec.train.config import Config
from archspec.train.data import load_idx_folder
from archspec.train.recordio import RecordFile, pack
from archspec.train.stream import shard
from archspec.train.transforms import Step, TransformError, apply
from conftest import ROOT

LENET = str(ROOT / "specs" / "lenet.yaml")
ARCHSPEC = [sys.executable, "-m", "archspec"]


@pytest.fixture(scope="session")
def digit_images(digits, tmp_path_factory):
    """Real digits (scikit-learn's) as a folder of PNG class folders, 32x32: 200 to train, 60 to test."""
    root = tmp_path_factory.mktemp("digit-images")
    for split, count in (("train", 200), ("test", 60)):
        data = load_idx_folder(digits, split)
        for i, (image, label) in enumerate(zip(data.images[:count], data.labels)):
            folder = root / split / f"digit-{label}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image[..., 0]).resize((32, 32), Image.BILINEAR).save(folder / f"{i:04d}.png")
    return root


def steps(*entries):
    return tuple(Step.model_validate(e) for e in entries)


def test_transforms_are_seeded_per_example_and_match_numpy():
    image = onp.random.default_rng(1).integers(0, 256, (40, 30, 3), dtype=onp.uint8)
    flip = steps({"flip": {"probability": 1.0}}, {"normalize": {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.5]}})
    out = apply(flip, image, onp.random.default_rng(0), (40, 30))
    expected = (image[:, ::-1].astype(onp.float32) / 255 - onp.array([0.5, 0.4, 0.3])[None, None]) / onp.array(
        [0.2, 0.25, 0.5])[None, None]
    assert out.shape == (3, 40, 30) and onp.allclose(out, expected.transpose(2, 0, 1), atol=1e-6)
    crop = steps({"center_crop": {"size": [20, 10]}})
    assert onp.array_equal(apply(crop, image, onp.random.default_rng(0), (20, 10)) * 255,
                           image[10:30, 10:20].transpose(2, 0, 1).astype(onp.float32))
    augment = steps({"random_resized_crop": {"size": 24}}, "flip",
                    {"color_jitter": {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4}}, "lighting")
    first = apply(augment, image, onp.random.default_rng([0, 1, 7]), (24, 24))
    again = apply(augment, image, onp.random.default_rng([0, 1, 7]), (24, 24))
    other = apply(augment, image, onp.random.default_rng([0, 2, 7]), (24, 24))
    assert first.shape == (3, 24, 24) and onp.array_equal(first, again) and not onp.array_equal(first, other)
    with pytest.raises(TransformError, match="larger than the image"):
        apply(steps({"center_crop": {"size": 50}}), image, onp.random.default_rng(0), (50, 50))


def test_schedules_follow_their_closed_forms():
    from archspec.train.optimization import scheduler

    def rate(n, **settings):
        return scheduler(Config(epochs=10, lr=0.1, **settings), 100)(n)

    assert rate(250, schedule="multistep", lr_epochs=(2, 5)) == pytest.approx(0.01)
    assert rate(501, schedule="multistep", lr_epochs=(2, 5)) == pytest.approx(0.001)
    assert rate(350, schedule="step", lr_epochs=(3,)) == pytest.approx(0.01)
    assert rate(50, schedule="cosine", warmup_epochs=1) == pytest.approx(0.1 * 50 / 100)  # linear warm-up from 0
    assert rate(550, schedule="cosine", warmup_epochs=1) == pytest.approx(0.1 * (1 + math.cos(math.pi * 450 / 900)) / 2)
    assert rate(1000, schedule="poly", power=2, final_lr=0.001) == pytest.approx(0.001)
    assert rate(500, schedule="poly", power=2) == pytest.approx(0.1 * (1 - 500 / 1000) ** 2)
    assert scheduler(Config(lr=0.1), 100) is None  # constant: MXNet's own fixed rate
    with pytest.raises(ValueError, match="needs one number"):
        Config(schedule="step", lr_epochs=(2, 4))


def test_label_smoothing_and_no_bias_decay():
    from mxnet import np, npx

    from archspec import build_model
    from archspec.train.optimization import SmoothedCrossEntropy, no_decay_on_biases_and_norms

    npx.set_np()
    logits = onp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], onp.float32)
    labels = onp.array([0, 1])
    log_p = logits - onp.log(onp.exp(logits).sum(axis=1, keepdims=True))
    target = onp.full((2, 3), 0.1 / 3) + 0.9 * onp.eye(3)[labels]
    got = SmoothedCrossEntropy(0.1)(np.array(logits), np.array(labels)).asnumpy()
    assert onp.allclose(got, -(target * log_p).sum(axis=1), atol=1e-5)
    net = build_model(str(ROOT / "specs" / "googlenet-bn.yaml"))
    changed = no_decay_on_biases_and_norms(net)
    params = net.collect_params()
    assert changed > 0 and all((p.wd_mult == 0) == n.endswith(("bias", "gamma", "beta")) for n, p in params.items())


def test_a_recipe_typo_is_refused_at_its_line(write_spec, capsys):
    spec = write_spec(f"base: {LENET}\ntrain:\n  epochs: 2\n  lr_schedul: cosine\n  augment:\n    - flipp\n",
                      "recipe.yaml")
    assert main(["validate", "--base-outside", str(spec)]) == 1
    out = capsys.readouterr().out
    assert f"{spec}:4:3: train.lr_schedul: unknown field 'lr_schedul'" in out
    assert f"{spec}:6:7: train.augment.0.flipp: unknown field 'flipp'; did you mean 'flip'?" in out


def test_options_override_the_recipe_and_the_base_recipe_merges(write_spec):
    from archspec.train.config import from_options
    from archspec.train.recipe import load_recipe

    write_spec(f"base: {LENET}\ntrain:\n  epochs: 7\n  lr: 0.5\n  schedule: cosine\n", "base.yaml")
    child = write_spec("base: base.yaml\ntrain:\n  lr: 0.2\n  augment: [flip]\n", "child.yaml")
    recipe = load_recipe(child, base_outside=True)
    config = from_options({"lr": 0.05}, ["lr", "epochs"], recipe.values)
    assert (config.epochs, config.lr, config.schedule, config.augment[0].name) == (7, 0.05, "cosine", "flip")
    origins = recipe.origins(["lr"])
    assert origins["lr"] == "--lr" and origins["epochs"] == "base.yaml:3" and origins["augment"] == "child.yaml:4"
    assert origins["momentum"] == "default"


def test_recordio_is_mxnets_format_and_bad_files_are_refused(digit_images, tmp_path, capsys):
    import mxnet as mx

    written = pack(digit_images / "train", tmp_path / "train.rec")
    assert written == [tmp_path / "train.rec"]
    ours = RecordFile(tmp_path / "train.rec")
    theirs = mx.recordio.MXIndexedRecordIO(str(tmp_path / "train.idx"), str(tmp_path / "train.rec"), "r")
    for k in (0, 57, len(ours) - 1):
        header, payload = mx.recordio.unpack(theirs.read_idx(k))
        assert int(header.label) == ours.labels[k] and payload == ours.payload(k)
    assert json.loads((tmp_path / "train.json").read_text())["classes"][0] == "digit-0"

    data = tmp_path / "data"
    data.mkdir()
    assert main(["pack", str(digit_images), "-o", str(data)]) == 0
    (data / "train.rec").write_bytes((data / "train.rec").read_bytes()[:-500])  # truncated
    run = tmp_path / "run"
    lenet32 = ["train", LENET, "--set", "input.height=32", "--set", "input.width=32", "--epochs", "1", "--out",
               str(run)]
    assert main([*lenet32, "--data-dir", str(data)]) == 1
    assert "train.rec: truncated" in capsys.readouterr().err and not run.exists()
    (data / "train.idx").write_text("0\t0\n1\t7\n")  # an index that is not this file's
    assert main([*lenet32, "--data-dir", str(data)]) == 1
    assert "train.idx: does not match train.rec" in capsys.readouterr().err and not run.exists()
    broken = tmp_path / "broken"
    for name in ("a", "b"):
        (broken / name).mkdir(parents=True)
        Image.new("L", (8, 8)).save(broken / name / "ok.png")
    (broken / "b" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    assert main(["pack", str(broken), "-o", str(tmp_path / "broken.rec")]) == 1
    assert "bad.png" in capsys.readouterr().err and not (tmp_path / "broken.rec").exists()


def test_a_crop_larger_than_the_images_is_refused_at_its_line(digit_images, write_spec, tmp_path, capsys):
    spec = write_spec(f"base: {LENET}\ntrain:\n  evaluate:\n    - center_crop: {{size: 40}}\n", "crop.yaml")
    assert main(["train", str(spec), "--base-outside", "--data-dir", str(digit_images), "--out",
                 str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert f"{spec}:4:20: train.evaluate.0.center_crop: a crop of 40x40 is larger than the image" in err
    assert not (tmp_path / "run").exists()


def test_two_distributed_workers_read_disjoint_shards_covering_the_epoch():
    count = 50  # steps x batch: 1000 examples, 2 workers, batch 10, 50 steps each
    a, b = (shard(seed=3, epoch=1, examples=1000, rank=rank, workers=2, count=count * 10) for rank in (0, 1))
    assert not set(a) & set(b) and sorted([*a, *b]) == list(range(1000))
    assert not onp.array_equal(a, shard(3, 2, 1000, 0, 2, count * 10))  # a new order every epoch


def _params(path):
    from mxnet import npx

    npx.set_np()
    return {k: v.asnumpy() for k, v in npx.load(str(path)).items()}


@pytest.mark.slow
@pytest.mark.parametrize("source", ["recordio", "folder"])
def test_sigkill_then_resume_equals_an_uninterrupted_run(source, digit_images, write_spec, tmp_path):
    """A streamed run with augmentation, killed by SIGKILL right after step 17 (of 26: mid-epoch 2, a checkpoint
    every 5 steps) and resumed, ends with the parameters of a run never stopped, bit for bit."""
    if source == "recordio":
        data = tmp_path / "packed"
        assert main(["pack", str(digit_images), "-o", str(data)]) == 0
    else:
        data = digit_images
    spec = write_spec(f"base: {LENET}\ninput: {{channels: 1, height: 28, width: 28}}\ntrain:\n  epochs: 2\n"
                      "  batch_size: 16\n  optimizer: adam\n  lr: 0.005\n  schedule: cosine\n  warmup_epochs: 0.5\n"
                      "  loader: stream\n  workers: 2\n  augment:\n    - random_resized_crop: {size: 28, scale: [0.5, 1]}\n"
                      "    - flip\n    - normalize: {mean: [0.3], std: [0.3]}\n"
                      "  evaluate:\n    - resize: {size: 30}\n    - center_crop: {size: 28}\n", "stream.yaml")

    def command(out):
        return ARCHSPEC + ["train", str(spec), "--base-outside", "--data-dir", str(data), "--checkpoint-every", "5",
                           "--out", str(out)]

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = tmp_path / "killed"
    proc = subprocess.run(command(killed), env={**env, "ARCHSPEC_TEST_FAILPOINT": "step:17:1:KILL"}, capture_output=True,
                          text=True)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert not (killed / "final.params").exists()
    resumed = subprocess.run([*command(killed), "--resume"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming {killed} at epoch 2, step 2/13" in resumed.stderr
    straight = subprocess.run(command(tmp_path / "straight"), env=env, capture_output=True, text=True)
    assert straight.returncode == 0, straight.stderr[-2000:]
    assert "streamed" in straight.stderr
    a, b = _params(killed / "final.params"), _params(tmp_path / "straight" / "final.params")
    assert a.keys() == b.keys() and all(onp.array_equal(a[k], b[k]) for k in a)
    metrics = [json.loads((folder / "metrics.json").read_text()) for folder in (killed, tmp_path / "straight")]
    assert metrics[0][-1]["test_acc"] == metrics[1][-1]["test_acc"] and metrics[0][-1]["lr"] == pytest.approx(0)
    assert "# stream.yaml:" in (killed / "recipe.yaml").read_text()
    # `evaluate` reads the same source through the recipe's evaluation transforms: the run's own test accuracy
    done = subprocess.run(ARCHSPEC + ["evaluate", str(spec), "--base-outside", "--data-dir", str(data), "--params",
                                      str(killed / "final.params")], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["accuracy"] == pytest.approx(metrics[0][-1]["test_acc"], abs=1e-6)
    if source == "folder":  # `predict` too: its top class is evaluate's prediction, file by file
        table = tmp_path / "predictions.csv"
        subprocess.run(ARCHSPEC + ["evaluate", str(spec), "--base-outside", "--data-dir", str(data), "--params",
                                   str(killed / "final.params"), "--predictions", str(table)], env=env, check=True,
                       capture_output=True)
        rows = [line.split(",") for line in table.read_text().splitlines()[1:6]]
        shown = subprocess.run(ARCHSPEC + ["predict", str(spec), "--base-outside", "--params",
                                           str(killed / "final.params"), "--json",
                                           *[str(data / row[1]) for row in rows]],
                               env=env, capture_output=True, text=True)
        assert shown.returncode == 0, shown.stderr[-2000:]
        assert [r["top"][0]["class"] for r in json.loads(shown.stdout)] == [int(row[3]) for row in rows]


@pytest.mark.parametrize("recipe, spec", [("d2l-fashion-mnist", "googlenet"), ("d2l-fine-tuning", "resnet18"),
                                          ("googlenet-imagenet", "googlenet-imagenet")])
def test_the_recipes_from_the_literature_are_valid(recipe, spec):
    from archspec.train.config import from_options
    from archspec.train.recipe import load_recipe

    path = ROOT / "specs" / "recipes" / f"{recipe}.yaml"
    config = from_options({}, [], load_recipe(spec, None, False, str(path)).values)
    text = path.read_text()
    for name, value in config.model_dump(mode="json").items():  # every number a recipe sets says its source
        line = next((line for line in text.splitlines() if line.strip().startswith(f"{name}:")), None)
        assert line is None or "#" in line or name in ("data", "augment", "evaluate"), f"{recipe}: {name}"


@pytest.mark.slow
def test_augmentation_helps_on_shifted_test_digits(digits, write_spec, tmp_path, capsys):
    """Digits centred for training and shifted by up to 3 pixels for testing: random crops of a padded image
    (D2L's CIFAR-10 augmentation) should score better than no augmentation."""
    from archspec.train.data import read_idx, write_idx

    shifted = tmp_path / "shifted"
    shifted.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        write_idx(shifted / name, read_idx(next(digits.glob(name + "*"))))
    rng = onp.random.default_rng(0)
    test = read_idx(next(digits.glob("t10k-images-idx3-ubyte*")))
    moved = onp.zeros_like(test)
    for i, image in enumerate(test):
        dy, dx = rng.integers(-3, 4, 2)
        padded = onp.pad(image, 3)
        moved[i] = padded[3 - dy:3 - dy + 28, 3 - dx:3 - dx + 28]
    write_idx(shifted / "t10k-images-idx3-ubyte", moved)
    accuracy = {}
    for name, augment in (("none", "[]"), ("crops", "[{random_crop: {size: 28, padding: 3}}]")):
        spec = write_spec(f"base: {LENET}\ntrain:\n  epochs: 8\n  batch_size: 32\n  optimizer: adam\n  lr: 0.005\n"
                          f"  augment: {augment}\n", f"{name}.yaml")
        assert main(["train", str(spec), "--base-outside", "--data-dir", str(shifted), "--out",
                     str(tmp_path / name)]) == 0
        accuracy[name] = json.loads((tmp_path / name / "metrics.json").read_text())[-1]["test_acc"]
    print(f"shifted digits, LeNet, 8 epochs: test accuracy {accuracy}")
    assert accuracy["crops"] > accuracy["none"] + 0.05


@pytest.mark.slow
def test_two_launched_workers_read_disjoint_shards_of_a_recordio_stream(digit_images, tmp_path):
    """`archspec launch` with two dist_sync workers streaming RecordIO: every example of the epoch that fits the
    workers' equal batches is read once, by one worker's processes (logged by a test-only hook)."""
    data, reads = tmp_path / "packed", tmp_path / "reads"
    assert main(["pack", str(digit_images), "-o", str(data)]) == 0
    reads.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ARCHSPEC_TEST_READS": str(reads)}
    train = ["train", LENET, "--set", "input.height=32", "--set", "input.width=32", "--data-dir", str(data),
             "--epochs", "1", "--batch-size", "16", "--workers", "2", "--kvstore", "dist_sync", "--out",
             str(tmp_path / "dist")]
    done = subprocess.run(ARCHSPEC + ["launch", "-n", "2", "-s", "1", "--launcher", "local", "--", *ARCHSPEC, *train],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    logs = list(reads.glob("*-train.rec.txt"))
    read = [int(line.split()[1]) for log in logs for line in log.read_text().splitlines()]
    assert len(logs) >= 2 and len(read) == len(set(read)) == 2 * (200 // 2 // 16) * 16  # 192 of 200: no overlap
    assert (tmp_path / "dist" / "worker-0" / "final.params").exists()
    assert (tmp_path / "dist" / "worker-1" / "final.params").exists()


def test_the_new_options_parse_from_the_command_line():
    from archspec.cli import TRAIN_OPTIONS, parser
    from archspec.train.config import from_options

    args = parser().parse_args(["train", LENET, "--schedule", "multistep", "--lr-epochs", "2,5", "--no-bias-decay",
                                "--label-smoothing", "0.1", "--loader", "stream"])
    config = from_options(vars(args), TRAIN_OPTIONS)
    assert (config.lr_epochs, config.no_bias_decay, config.label_smoothing, config.loader) == ((2, 5), True, 0.1,
                                                                                              "stream")
    assert from_options(vars(parser().parse_args(["train", LENET])), TRAIN_OPTIONS) == Config()  # defaults: once


# A hostile and an ordinary user's mistakes (issue 24's review): each refused by place, nothing written.

@pytest.mark.parametrize("recipe, where, message", [
    ("  augment: [{center_crop: {size: 0}}]\n", "3:34", "train.augment.0.center_crop.size"),
    ("  augment: [{resize: {size: [0, 5]}}]\n", "3:29", "input should be greater than or equal to 1"),
    ("  augment: [{random_resized_crop: {size: 100000}}]\n", "3:42", "less than or equal to 4096"),
    ("  epochs: 2\n  warmup_epochs: 3\n", "4:18", "a warm-up of 3 epoch(s) takes the whole run of 2"),
    ("  lr: 0.1\n  warmup_lr: 0.5\n", "4:14", "train.warmup_lr: expected at most lr (0.1), got 0.5"),
    ("  lr: 0.1\n  schedule: cosine\n  final_lr: 0.2\n", "5:13", "expected at most lr (0.1), got 0.2"),
    ("  lr_epochs: [3]\n", "3:14", "train.lr_epochs: applies to schedule step or multistep, not constant"),
    ("  schedule: multistep\n  lr_epochs: [30, 20]\n", "4:14", "schedule multistep needs increasing epochs"),
    ("  schedule: multistep\n  lr_epochs: [30, 1000000000000000]\n", "4:19",
     "train.lr_epochs.1: input should be less than or equal to 100000"),  # as --epochs: 10^15 was accepted
    ("  schedule: poly\n  power: 0\n", "4:10", "train.power: input should be greater than 0"),
    ("  lr: 0\n", "3:7", "train.lr: input should be greater than 0"),
    ("  augment: [" + ", ".join(["flip"] * 65) + "]\n", "3:12", "train.augment: tuple should have at most 64 items"),
])
def test_recipe_values_out_of_reach_are_refused_at_their_line(recipe, where, message, write_spec, tmp_path, capsys):
    spec = write_spec(f"base: {LENET}\ntrain:\n{recipe}", "bad.yaml")
    assert main(["validate", "--base-outside", str(spec)]) == 1
    out = capsys.readouterr().out
    assert f"{spec}:{where}: " in out and message in out, out
    assert main(["train", str(spec), "--base-outside", "--out", str(tmp_path / "run")]) == 1
    assert not (tmp_path / "run").exists()


def test_a_warmup_as_long_as_the_run_is_refused_on_the_command_line_too(capsys):
    from archspec.cli import TRAIN_OPTIONS, parser
    from archspec.train.config import from_options

    args = parser().parse_args(["train", LENET, "--epochs", "2", "--warmup-epochs", "2"])
    with pytest.raises(InputError, match="--warmup-epochs: a warm-up of 2 epoch"):
        from_options(vars(args), TRAIN_OPTIONS)


def test_an_alias_bomb_in_a_recipe_is_refused(write_spec, capsys):
    spec = write_spec(f"base: {LENET}\nx: &a [flip, flip, flip, flip, flip, flip, flip, flip, flip]\n"
                      "y: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nz: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                      "train:\n  augment: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n", "bomb.yaml")
    assert main(["validate", "--base-outside", str(spec)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{spec}:") and "Traceback" not in out


def _tree(folder):
    return sorted((str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*"))


@pytest.mark.parametrize("output, message", [
    ("", "-o: an empty path names nothing to write; name a folder"),  # files.named, the rule of every command
    (".rec", "-o .rec: a hidden name"),
    ("IMAGE", "an existing file that is not a .rec"),
    ("FOLDER", "the folder being packed"),
    ("images/digit-0/new.rec", "the folder being packed, where the RecordIO files would be read as its data"),
    ("images/digit-0", "the folder being packed"),
    ("images/../images/sub", "the folder being packed"),
    ("LINK.rec", "the folder being packed"),  # a link to an image of the folder
    ("out.rec/", "ends in a folder, not a file name"),
    ("made.rec", "made.rec: is a folder; name a file to write"),
    ("idx/data.rec", "idx/data.idx: is a folder; name a file to write"),
])
def test_pack_refuses_an_output_it_cannot_write_as_asked(output, message, digit_images, tmp_path, monkeypatch,
                                                         capsys):
    import shutil

    folder = tmp_path / "images"
    shutil.copytree(digit_images / "train", folder)
    (tmp_path / "made.rec").mkdir()
    (tmp_path / "idx" / "data.idx").mkdir(parents=True)
    (tmp_path / "link.rec").symlink_to(sorted(folder.glob("*/*.png"))[0])
    output = {"IMAGE": str(sorted(folder.glob("*/*.png"))[0]), "FOLDER": str(folder),
              "LINK.rec": "link.rec"}.get(output, output)
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)
    assert main(["pack", str(folder), "-o", output, "--test-fraction", "0.2"]) == 1
    err = capsys.readouterr().err
    assert f"archspec: {message}" in err or message in err.splitlines()[-1], err
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("fraction, message", [
    ("1.5", "less than 1, got 1.5"), ("1", "less than 1, got 1.0"), ("0", "greater than 0, got 0.0"),
    ("-1", "greater than 0, got -1.0"), ("nan", "a finite number, got nan"), ("inf", "a finite number, got inf")])
def test_pack_refuses_a_test_fraction_out_of_its_bounds(fraction, message, digit_images, tmp_path, capsys):
    """Bounded as training's --test-fraction (Config): 1.5 wrote an empty train.rec, nan was an internal error."""
    import shutil

    folder = tmp_path / "images"
    shutil.copytree(digit_images / "train", folder)
    before = _tree(tmp_path)
    assert main(["pack", str(folder), "-o", str(tmp_path / "out"), "--test-fraction", fraction]) == 1
    err = capsys.readouterr().err
    assert f"archspec: --test-fraction: input should be {message}" in err and "internal error" not in err, err
    assert _tree(tmp_path) == before


def test_pack_never_writes_over_an_image_it_reads_through_a_link(tmp_path, capsys):
    """An image of the folder that links to a file elsewhere, named as the output: packing would replace it."""
    (tmp_path / "images" / "a").mkdir(parents=True)
    Image.new("L", (8, 8), 9).save(tmp_path / "images" / "a" / "1.png")
    Image.new("L", (8, 8), 3).save(tmp_path / "data.rec", format="PNG")  # an image, whatever its name
    (tmp_path / "images" / "a" / "2.png").symlink_to(tmp_path / "data.rec")
    before = _tree(tmp_path)
    assert main(["pack", str(tmp_path / "images"), "-o", str(tmp_path / "data.rec")]) == 1
    err = capsys.readouterr().err
    assert f"archspec: {tmp_path / 'data.rec'}: is {tmp_path / 'images' / 'a' / '2.png'}, which this command " \
           "reads; writing would replace it" in err, err
    assert _tree(tmp_path) == before and Image.open(tmp_path / "data.rec").getpixel((0, 0)) == 3


def test_pack_of_an_empty_folder_and_of_odd_class_names(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["pack", str(tmp_path / "empty"), "-o", str(tmp_path / "e.rec")]) == 1
    assert "empty: no class folders" in capsys.readouterr().err and not (tmp_path / "e.rec").exists()
    odd = tmp_path / "odd"
    for name in ("a b", "ü,\"q\"", "x\ty"):
        (odd / name).mkdir(parents=True)
        Image.new("L", (8, 8), 9).save(odd / name / "1.png")
    (odd / "a b" / "notes.txt").write_text("not an image")
    (odd / "a b" / ".hidden.png").write_bytes(b"not an image either, and hidden")
    assert main(["pack", str(odd), "-o", str(tmp_path / "odd.rec")]) == 0
    packed = RecordFile(tmp_path / "odd.rec")
    assert packed.classes == ("a b", "x\ty", "ü,\"q\"") and len(packed) == 3 and list(packed.labels) == [0, 1, 2]


@pytest.mark.slow
def test_a_pack_killed_midway_leaves_no_rec_and_stale_class_names_are_refused(digit_images, tmp_path):
    out = tmp_path / "data.rec"
    assert main(["pack", str(digit_images / "test"), "-o", str(out)]) == 0  # an earlier pack at the same place
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ARCHSPEC_TEST_FAILPOINT": "record:30:1:KILL"}
    proc = subprocess.run(ARCHSPEC + ["pack", str(digit_images / "train"), "-o", str(out)], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr[-2000:]
    # no .rec that could pass for finished: the earlier one is gone, the new one was never renamed into place
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.suffix == ".rec"]
    with pytest.raises(InputError, match="data.rec: no such RecordIO file"):
        RecordFile(out)
    assert main(["pack", str(digit_images / "train"), "-o", str(out)]) == 0
    assert len(RecordFile(out)) == 200
    meta = json.loads(out.with_suffix(".json").read_text())
    out.with_suffix(".json").write_text(json.dumps({**meta, "records": 60}))  # another pack's class names
    with pytest.raises(InputError, match="data.json: does not match data.rec: it was written for 60 records"):
        RecordFile(out)


def test_a_record_with_a_label_array_is_refused_by_name(tmp_path):
    import struct

    from archspec.train.recordio import MAGIC

    png = io_png()
    body = struct.pack("<IfQQ", 2, 0.0, 0, 0) + struct.pack("<ff", 1.0, 3.0) + png  # flag 2: two labels
    (tmp_path / "multi.rec").write_bytes(struct.pack("<II", MAGIC, len(body)) + body + b"\0" * (-len(body) % 4))
    (tmp_path / "multi.idx").write_text("0\t0\n")
    with pytest.raises(InputError, match="multi.rec: record 0 has a label array; archspec reads one class number"):
        RecordFile(tmp_path / "multi.rec")


def io_png():
    import io

    buffer = io.BytesIO()
    Image.new("L", (8, 8), 100).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.slow
def test_a_corrupt_image_met_mid_epoch_names_its_path_and_what_is_left(digit_images, tmp_path, capsys):
    import multiprocessing
    import shutil

    data = tmp_path / "data"
    shutil.copytree(digit_images, data)
    bad = data / "train" / "digit-9" / "zzzz.png"  # not the first example, which is tried before the run starts
    bad.write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
    run = tmp_path / "run"
    assert main(["train", LENET, "--set", "input.height=32", "--set", "input.width=32", "--data-dir", str(data),
                 "--loader", "stream", "--workers", "2", "--epochs", "1", "--batch-size", "50", "--out",
                 str(run)]) == 1
    err = capsys.readouterr().err
    assert f"archspec: {bad}: corrupt or truncated image" in err
    assert f"{run} keeps its settings and no checkpoint" in err and "Traceback" not in err
    assert not (run / "checkpoints").exists() and not (run / "final.params").exists()
    assert not multiprocessing.active_children()  # the decoding workers ended with the run


def test_transforms_on_a_small_image_folder_see_each_image_at_its_own_size(digit_images, tmp_path, capsys):
    """The in-memory path holds images resized to the network's input; a recipe's `resize` + `center_crop` are
    written for the original image, so a folder with transforms streams, and --loader memory is refused."""
    from archspec.train.stream import sources

    config = Config(data_dir=str(digit_images), evaluate=steps({"center_crop": {"size": 28}}))
    train, test, chosen = sources(config, (1, 28, 28))
    assert "streamed from the image folder (the recipe's transforms take each image" in chosen
    assert train.image(0).shape == (32, 32, 1)
    with pytest.raises(InputError, match="--loader memory holds images resized to the network's input"):
        sources(config.model_copy(update={"loader": "memory"}), (1, 28, 28))


def test_int8_calibration_reads_images_through_the_evaluation_transforms(digit_images, write_spec):
    """INT8's calibration batch is evaluate's: each image centre-cropped from its own 32x32 and normalised, as
    numpy computes it from the PNG here."""
    import argparse

    from archspec import build_model, load_spec
    from archspec.cli import _calibration
    from archspec.gluon.precision import CALIBRATION_BATCH

    spec = write_spec(f"base: {LENET}\ninput: {{channels: 1, height: 28, width: 28}}\ntrain:\n  evaluate:\n"
                      "    - center_crop: {size: 28}\n    - normalize: {mean: [0.5], std: [0.25]}\n", "int8.yaml")
    args = argparse.Namespace(precision="int8", calibration_data=str(digit_images), calibration_batches=1,
                              data_dir=None, test_fraction=None, spec=str(spec), overrides=None, base_outside=True)
    batch = _calibration(args, build_model(load_spec(str(spec), base_outside=True))).asnumpy()
    files = sorted((digit_images / "train").glob("*/*.png"))
    assert batch.shape == (CALIBRATION_BATCH, 1, 28, 28)
    for row, k in ((0, 0), (-1, len(files) - 1)):
        pixels = onp.asarray(Image.open(files[k]), onp.float32)[2:30, 2:30] / 255
        assert onp.allclose(batch[row, 0], (pixels - 0.5) / 0.25, atol=1e-6)


def test_a_normalize_for_other_channels_is_refused_at_its_line(digit_images, write_spec, tmp_path, capsys):
    spec = write_spec(f"base: {LENET}\ninput: {{channels: 1, height: 32, width: 32}}\ntrain:\n  evaluate:\n"
                      "    - normalize: {mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}\n", "rgb.yaml")
    run = tmp_path / "run"
    assert main(["train", str(spec), "--base-outside", "--data-dir", str(digit_images), "--out", str(run)]) == 1
    err = capsys.readouterr().err
    assert f"{spec}:5:18: train.evaluate.0.normalize: 3 means and stds for images of 1 channel(s)" in err
    assert not run.exists()


def test_an_image_too_small_for_the_crop_mid_epoch_is_located_and_named(tmp_path, write_spec, capsys):
    """The first image is tried before the run starts; a smaller one later is met by a worker process, and
    refused at the crop's line in the recipe, naming the image."""
    data = tmp_path / "data"
    for name in ("a", "b"):
        (data / name).mkdir(parents=True)
        for i in range(4):
            Image.new("L", (32, 32) if i < 3 else (16, 16), 40 * i).save(data / name / f"{i}.png")
    spec = write_spec(f"base: {LENET}\nargs: {{num_classes: 2}}\ntrain:\n  epochs: 1\n  batch_size: 4\n"
                      "  workers: 2\n  augment:\n    - center_crop: {size: 24}\n", "small.yaml")
    run = tmp_path / "run"
    assert main(["train", str(spec), "--base-outside", "--data-dir", str(data), "--test-fraction", "0.3", "--out",
                 str(run)]) == 1
    err = capsys.readouterr().err
    assert f"{spec}:8:20: train.augment.0.center_crop: a crop of 24x24 is larger than the image (16x16)" in err
    assert str(data / "a" / "3.png") in err or str(data / "b" / "3.png") in err
    assert f"{run} keeps its settings and no checkpoint" in err
    assert not (run / "checkpoints").exists()


@pytest.mark.slow
def test_decoding_workers_end_with_a_killed_training_process(digit_images, tmp_path):
    """SIGKILL (by the test-only hook, after step 3) leaves no decoding worker behind: each ends with its parent."""
    reads = tmp_path / "reads"
    reads.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ARCHSPEC_TEST_FAILPOINT": "step:3:1:KILL", "ARCHSPEC_TEST_READS": str(reads)}
    proc = subprocess.run(ARCHSPEC + ["train", LENET, "--set", "input.height=32", "--set", "input.width=32",
                                      "--data-dir", str(digit_images), "--loader", "stream", "--workers", "2",
                                      "--batch-size", "16", "--out", str(tmp_path / "run")],
                          env=env, capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr[-2000:]
    workers = {int(p.name.split("-")[0]) for p in reads.iterdir()}
    assert workers  # the processes that decoded batches (the pool's, not the killed one: it never reads a batch)

    def alive(pid):  # a zombie waiting for init to reap it has ended
        try:
            return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
        except (FileNotFoundError, ProcessLookupError):
            return False

    import time
    from pathlib import Path

    deadline = time.monotonic() + 30  # the signal is delivered at the parent's exit; waits only for the exits
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in workers)


@pytest.mark.slow
def test_resuming_with_a_changed_recipe_is_refused_and_says_what_changed(digit_images, write_spec, tmp_path, capsys):
    spec = write_spec(f"base: {LENET}\ninput: {{channels: 1, height: 32, width: 32}}\ntrain:\n  epochs: 1\n"
                      "  batch_size: 50\n  workers: 1\n  augment: [flip]\n", "first.yaml")
    run = tmp_path / "run"
    command = ["train", str(spec), "--base-outside", "--data-dir", str(digit_images), "--out", str(run)]
    assert main(command) == 0
    files = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    spec.write_text(spec.read_text().replace("[flip]", "[{flip: {probability: 1}}]"))
    assert main([*command, "--epochs", "2", "--resume"]) == 1
    err = capsys.readouterr().err
    assert (f"{run}: --resume continues a run with the same settings and data; these differ (saved, now): augment: "
            "([{'flip': {'probability': 0.5}}], [{'flip': {'probability': 1.0}}])") in err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"} == files
