"""Users' own images: training and evaluating on class folders of PNG and JPEG files, and `archspec predict`
from trained parameters, an MXNet export and an ONNX export, all agreeing with `evaluate`."""
import csv
import json
import os
import struct
import zlib

import numpy as onp
import pytest
from PIL import Image

from archspec.cli import main
from conftest import ROOT

LENET = str(ROOT / "specs" / "lenet.yaml")
NAMES = "zero one two three four five six seven eight nine".split()


def write_digits(root, split_by_folder=True):
    """scikit-learn's real 8x8 digits as image files in class folders named by the digit: every fifth image in
    test/, the rest in train/. Sizes, colours and formats vary as in a user's folder: 8x8 grayscale PNG, 20x20
    RGB PNG, JPEG."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    for k, (pixels, label) in enumerate(zip(digits.images, digits.target)):
        split = ("test" if k % 5 == 0 else "train") if split_by_folder else ""
        folder = root / split / NAMES[label]
        folder.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray((pixels * 255 / 16).astype(onp.uint8))
        if k % 3 == 1:
            image = image.resize((20, 20)).convert("RGB")
        image.save(folder / f"{k}.jpg", quality=95) if k % 7 == 3 else image.save(folder / f"{k}.png")
    return root


@pytest.fixture(scope="module")
def digit_images(tmp_path_factory):
    return write_digits(tmp_path_factory.mktemp("digit-images"))


def png(width, height):
    """A well-formed PNG claiming `width` x `height` gray pixels, in a few bytes: a decompression bomb."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pixels = zlib.compress(b"\0" * (width + 1) * 16)  # a few rows; the rest would be asked of the decoder
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + \
        chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


@pytest.mark.slow
def test_train_on_an_image_folder_and_predict_agrees_with_evaluate_for_params_and_exports(digit_images, tmp_path,
                                                                                         capsys):
    run = tmp_path / "run"
    assert main(["train", LENET, "--data-dir", str(digit_images), "--epochs", "6", "--batch-size", "32",
                 "--optimizer", "adam", "--lr", "0.005", "--out", str(run)]) == 0
    assert json.loads((run / "classes.json").read_text()) == sorted(NAMES)  # Gluon's order: sorted folder names
    capsys.readouterr()
    assert main(["evaluate", LENET, "--data-dir", str(digit_images), "--params", str(run / "final.params"),
                 "--predictions", str(tmp_path / "predictions.csv")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["examples"] == len(list(digit_images.glob("test/*/*"))) and report["accuracy"] > 0.5  # chance 0.1
    rows = list(csv.DictReader(open(tmp_path / "predictions.csv")))
    assert sum(r["label"] == r["predicted"] for r in rows) / len(rows) == pytest.approx(report["accuracy"], abs=1e-6)
    expected = {r["file"]: sorted(NAMES)[int(r["predicted"])] for r in rows}
    images = [str(digit_images / f) for f in expected]

    subset = tmp_path / "subset"  # a test folder without "zero": labels follow the model's classes, not the folder's
    (subset / "test").mkdir(parents=True)
    (subset / "train").symlink_to(digit_images / "train")
    for name in NAMES[1:]:
        (subset / "test" / name).symlink_to(digit_images / "test" / name)
    capsys.readouterr()
    assert main(["evaluate", LENET, "--data-dir", str(subset), "--params", str(run / "final.params"),
                 "--predictions", str(tmp_path / "subset.csv")]) == 0
    subset_rows = list(csv.DictReader(open(tmp_path / "subset.csv")))
    assert {r["file"]: r["predicted"] for r in subset_rows} == {r["file"]: r["predicted"] for r in rows
                                                                if "/zero/" not in r["file"]}
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(
        sum(r["label"] == r["predicted"] for r in subset_rows) / len(subset_rows))
    assert {r["label"] for r in subset_rows} == {str(sorted(NAMES).index(n)) for n in NAMES[1:]}

    assert main(["export", LENET, "--params", str(run / "final.params"), "-o", str(tmp_path / "lenet")]) == 0
    assert main(["export", LENET, "--params", str(run / "final.params"), "--format", "onnx",
                 "-o", str(tmp_path / "lenet.onnx")]) == 0
    for model in (run / "final.params", tmp_path / "lenet-symbol.json", tmp_path / "lenet-0000.params",
                  tmp_path / "lenet.onnx"):  # an export's weights run with the graph beside them
        capsys.readouterr()
        assert main(["predict", LENET, "--params", str(model), "--top", "2", "--json", *images]) == 0
        results = json.loads(capsys.readouterr().out)
        predicted = {str(digit_images.joinpath(f)): results[k]["top"][0]["name"] for k, f in enumerate(expected)}
        assert predicted == {str(digit_images / f): name for f, name in expected.items()}, model
        assert all(len(r["top"]) == 2 and r["top"][0]["probability"] >= r["top"][1]["probability"] for r in results)

    assert main(["export", LENET, "-o", str(tmp_path / "lenet")]) == 0  # no --params: no names, and none left over
    assert not (tmp_path / "lenet-classes.json").exists()


def test_a_corrupt_truncated_or_enormous_image_is_reported_by_path_and_nothing_is_written(tmp_path, capsys):
    data = tmp_path / "data"
    for split in ("train", "test"):
        for name in ("cat", "dog"):
            (data / split / name).mkdir(parents=True)
            noise = onp.random.default_rng(0).integers(0, 256, (32, 32), onp.uint8)
            Image.fromarray(noise).save(data / split / name / "ok.png")
    (data / "train" / "dog" / "notes.txt").write_text("not an image: skipped, as Gluon's ImageFolderDataset does")
    good = (data / "train" / "cat" / "ok.png").read_bytes()
    (data / "train" / "cat" / "truncated.png").write_bytes(good[:len(good) // 2])  # cut in the pixels
    (data / "train" / "dog" / "garbage.jpg").write_bytes(b"\xff\xd8 this is no JPEG")
    (data / "train" / "dog" / "bomb.png").write_bytes(png(10_000, 10_000))
    os.mkfifo(data / "train" / "dog" / "fifo.png")  # reading it would block forever
    (data / "train" / "dog" / "zero.png").symlink_to("/dev/zero")  # reading it would never end
    assert main(["train", LENET, "--data-dir", str(data), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "5 of 7 images cannot be read" in err
    assert f"{data / 'train' / 'dog' / 'fifo.png'}: not a regular file" in err
    assert f"{data / 'train' / 'dog' / 'zero.png'}: not a regular file" in err
    assert f"{data / 'train' / 'cat' / 'truncated.png'}: corrupt or truncated image" in err
    assert f"{data / 'train' / 'dog' / 'garbage.jpg'}: not an image (no format Pillow reads)" in err
    assert f"{data / 'train' / 'dog' / 'bomb.png'}: 100,000,000 pixels is more than archspec decodes" in err
    assert "notes.txt" not in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_folder_of_class_folders_is_split_by_test_fraction_stably(tmp_path, capsys):
    from archspec.train import data

    folder = tmp_path / "flat"
    for name in ("a", "b"):
        (folder / name).mkdir(parents=True)
        for k in range(40):
            Image.fromarray(onp.full((4, 4), k, onp.uint8)).save(folder / name / f"{k}.png")
    with pytest.raises(data.InputError, match="--test-fraction 0.2"):
        data.load("fashion-mnist", "train", folder, (1, 28, 28))
    train, test = (data.load("fashion-mnist", s, folder, (1, 28, 28), 0.25) for s in ("train", "test"))
    assert set(train.names).isdisjoint(test.names) and len(train) + len(test) == 80
    assert 0.1 < len(test) / 80 < 0.4 and set(test.labels) == {0, 1} and train.classes == ("a", "b")
    assert train.images.shape[1:] == (28, 28, 1)
    (folder / "a" / "new.png").write_bytes((folder / "a" / "0.png").read_bytes())  # one more image moves no other
    again = data.load("fashion-mnist", "test", folder, (1, 28, 28), 0.25)
    assert set(test.names) <= set(again.names) and len(again) - len(test) <= 1
    assert main(["evaluate", LENET, "--data-dir", str(folder), "--params", "x.params"]) == 1
    assert "--test-fraction" in capsys.readouterr().err


def test_test_classes_must_be_training_classes_and_channels_must_be_images(tmp_path, capsys, write_spec):
    data = tmp_path / "data"
    for split, name in (("train", "cat"), ("test", "cat"), ("test", "emu")):
        (data / split / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(onp.zeros((8, 8), onp.uint8)).save(data / split / name / "0.png")
    assert main(["train", LENET, "--data-dir", str(data), "--out", str(tmp_path / "run")]) == 1
    assert f"{data / 'test'}: class folder(s) emu are not in {data / 'train'}" in capsys.readouterr().err
    (data / "test" / "emu" / "0.png").unlink()
    (data / "test" / "emu").rmdir()
    for hidden in (data / "train" / ".ipynb_checkpoints", data / "test" / ".git"):  # not classes
        hidden.mkdir()
        Image.fromarray(onp.zeros((8, 8), onp.uint8)).save(hidden / "0.png")
    (data / "train" / "cat" / "._0.png").write_bytes(b"macOS AppleDouble: not an image, and hidden")
    assert main(["train", LENET, "--data-dir", str(data), "--out", str(tmp_path / "run")]) == 1
    assert "1 classes (cat), but lenet has 10 outputs; make them equal (a spec with a num_classes argument: " \
           "--set num_classes=1)" in capsys.readouterr().err
    four = write_spec("name: four\ninput: {channels: 4, height: 8, width: 8}\nstages:\n  head: [dense: {units: 2}]\n")
    assert main(["train", str(four), "--data-dir", str(data), "--out", str(tmp_path / "run")]) == 1
    assert "images give 1 (grayscale) or 3 (RGB) channels; the spec takes 4" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_predict_names_classes_and_refuses_what_it_cannot_read(tmp_path, capsys):
    from archspec import build_model

    net = build_model(LENET)
    net.save_parameters(str(tmp_path / "final.params"))
    image = tmp_path / "x.png"
    Image.fromarray(onp.zeros((28, 28), onp.uint8)).save(image)
    assert main(["predict", LENET, "--params", str(tmp_path / "final.params"), str(image), "--top", "10",
                 "--json"]) == 0
    names = [t["name"] for t in json.loads(capsys.readouterr().out)[0]["top"]]
    assert sorted(names) == sorted(["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                                    "sneaker", "bag", "ankle boot"])  # D2L's text_labels: ten outputs, no names kept
    (tmp_path / "classes.json").write_text(json.dumps(NAMES))
    assert main(["predict", LENET, "--params", str(tmp_path / "final.params"), str(image), "--top", "1"]) == 0
    assert capsys.readouterr().out.split(": ")[1].split()[0] in NAMES
    (tmp_path / "names.json").write_text('["just one"]')
    for extra, message in (([str(tmp_path / "nope.png")], "nope.png: cannot read it"),
                           (["--classes", str(tmp_path / "names.json")], "1 class names for a network of 10 outputs"),
                           (["--top", "0"], "--top: expected a positive number"),
                           ([str(tmp_path / "final.params")], "final.params: not an image (no format Pillow reads)")):
        assert main(["predict", LENET, "--params", str(tmp_path / "final.params"), str(image), *extra]) == 1
        assert message in capsys.readouterr().err
    assert main(["predict", LENET, "--params", str(image), str(image)]) == 1
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.slow
def test_engine_onnxruntime_predicts_and_evaluates_as_mxnet_does(digit_images, tmp_path, monkeypatch, capsys):
    """Issue 25: `--engine onnxruntime` runs trained parameters through the network's ONNX export; the same
    probabilities, loss and accuracy as MXNet computes (float32 both)."""
    from archspec import build_model

    build_model(LENET).save_parameters(str(tmp_path / "final.params"))
    images = [str(f) for f in sorted((digit_images / "test" / "three").iterdir())[:5]]
    found = {}
    for engine in ("mxnet", "onnxruntime"):
        assert main(["predict", LENET, "--params", str(tmp_path / "final.params"), *images, "--top", "10", "--json",
                     "--engine", engine]) == 0
        probabilities = [{t["class"]: t["probability"] for t in r["top"]} for r in json.loads(capsys.readouterr().out)]
        assert main(["evaluate", LENET, "--params", str(tmp_path / "final.params"), "--data-dir", str(digit_images),
                     "--engine", engine]) == 0
        found[engine] = probabilities, json.loads(capsys.readouterr().out.splitlines()[-1])
    (mx_p, mx_e), (ort_p, ort_e) = found["mxnet"], found["onnxruntime"]
    assert all(abs(a[k] - b[k]) < 1e-5 for a, b in zip(mx_p, ort_p) for k in range(10))
    assert ort_e["examples"] == mx_e["examples"] == 360 and ort_e["accuracy"] == mx_e["accuracy"]
    assert (mx_e["engine"], ort_e["engine"]) == ("mxnet", "onnxruntime")  # which engine served, said
    assert abs(ort_e["loss"] - mx_e["loss"]) < 1e-5
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)  # so that it ran through ONNX Runtime
    assert main(["evaluate", LENET, "--params", str(tmp_path / "final.params"), "--data-dir", str(digit_images),
                 "--engine", "onnxruntime"]) == 1
    assert "needs ONNX Runtime: pip install 'archspec[export]'" in capsys.readouterr().err


def test_engine_onnxruntime_refusals_name_the_fix(tmp_path, monkeypatch, capsys):
    from archspec import build_model

    build_model(LENET).save_parameters(str(tmp_path / "final.params"))
    image = tmp_path / "x.png"
    Image.fromarray(onp.zeros((28, 28), onp.uint8)).save(image)
    assert main(["evaluate", LENET, "--params", str(tmp_path / "final.params"), "--engine", "onnxruntime",
                 "--precision", "int8"]) == 1
    assert "--engine onnxruntime runs fp32; --precision int8 runs on MXNet" in capsys.readouterr().err
    (tmp_path / "model.onnx").write_bytes(b"not read: refused by its engine first")
    assert main(["predict", LENET, "--params", str(tmp_path / "model.onnx"), str(image), "--engine", "mxnet"]) == 1
    assert "model.onnx: an ONNX export runs on onnxruntime, not --engine mxnet" in capsys.readouterr().err
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)  # what `import` meets without the extra
    assert main(["predict", LENET, "--params", str(tmp_path / "final.params"), str(image), "--engine",
                 "onnxruntime"]) == 1
    err = capsys.readouterr().err
    assert "--engine onnxruntime needs ONNX Runtime: pip install 'archspec[export]'" in err and "Traceback" not in err
    assert sorted(f.name for f in tmp_path.iterdir()) == ["final.params", "model.onnx", "x.png"]


def test_file_names_that_are_not_utf8_and_outputs_that_are_not_files(tmp_path, capsys):
    from archspec import build_model

    data = tmp_path / "data"
    for name in ("a", "b"):
        (data / name).mkdir(parents=True)
        for k in range(3):
            Image.fromarray(onp.full((8, 8), 60 * k, onp.uint8)).save(data / name / f"{k}.png")
    latin1 = os.fsdecode(b"caf\xe9.png")  # a name written by a system that is not UTF-8
    (data / "a" / latin1).write_bytes((data / "a" / "0.png").read_bytes())
    two = ["--set", "num_classes=2"]
    build_model(LENET, {"num_classes": 2}).save_parameters(str(tmp_path / "two.params"))
    evaluate = ["evaluate", LENET, *two, "--data-dir", str(data), "--test-fraction", "0.5", "--split", "train",
                "--params", str(tmp_path / "two.params"), "--predictions"]
    assert main([*evaluate, str(tmp_path / "p.csv")]) == 0
    assert b"a/caf\xe9.png" in (tmp_path / "p.csv").read_bytes()
    assert main(["predict", LENET, *two, "--params", str(tmp_path / "two.params"), str(data / "a" / latin1)]) == 0
    assert "caf\\xe9.png: " in capsys.readouterr().out
    (tmp_path / "real.csv").write_text("")
    (tmp_path / "link.csv").symlink_to(tmp_path / "real.csv")
    assert main([*evaluate, str(tmp_path / "link.csv")]) == 0  # through the link, which stays a link
    assert (tmp_path / "link.csv").is_symlink() and (tmp_path / "real.csv").read_bytes().startswith(b"example,file")
    os.mkfifo(tmp_path / "fifo")
    for target, message in ((tmp_path, "is a folder; name a file to write"), (tmp_path / "fifo", "not a regular file")):
        capsys.readouterr()
        assert main([*evaluate, str(target)]) == 1
        assert message in capsys.readouterr().err
    assert (tmp_path / "fifo").is_fifo()


def test_predict_refuses_a_model_that_does_not_fit_the_spec_or_names_that_do_not_parse(tmp_path, write_spec, capsys):
    from archspec import build_model

    image = tmp_path / "x.png"
    Image.fromarray(onp.zeros((28, 28), onp.uint8)).save(image)
    assert main(["export", LENET, "--input", "1x32x32", "-o", str(tmp_path / "big")]) == 0
    features = write_spec("name: features\ninput: {channels: 1, height: 28, width: 28}\n"
                          "stages:\n  body: [conv: {channels: 4, kernel: 3}]\n")
    build_model(features).save_parameters(str(tmp_path / "features.params"))
    (tmp_path / "deep.json").write_text("[" * 100_000)
    build_model(LENET).save_parameters(str(tmp_path / "lenet.params"))
    for args, message in (
            ([LENET, "--params", str(tmp_path / "big-symbol.json")], "big-symbol.json: does not run on lenet's "
                                                                    "input, N x 1x28x28"),
            ([str(features), "--params", str(tmp_path / "features.params")], "features.params: gives 4x26x26 an "
                                                                             "image, not one score a class"),
            ([LENET, "--params", str(tmp_path / "lenet.params"), "--classes", str(tmp_path / "deep.json")],
             "deep.json: not a JSON list of class names (RecursionError)")):
        assert main(["predict", *args, str(image)]) == 1
        assert message in capsys.readouterr().err
    assert main(["export", LENET, "-o", str(tmp_path / "small")]) == 0  # an export's weights of another epoch ...
    (tmp_path / "small-0007.params").write_bytes((tmp_path / "small-0000.params").read_bytes())
    assert main(["predict", LENET, "--params", str(tmp_path / "small-0007.params"), str(image)]) == 0
    (tmp_path / "small-0007.params").write_bytes((tmp_path / "big-0000.params").read_bytes())  # ... are the ones run
    assert main(["predict", LENET, "--params", str(tmp_path / "small-0007.params"), str(image)]) == 1
    err = capsys.readouterr().err
    assert "small-symbol.json: not an MXNet export MXNet can load" in err and "small-0007.params" in err
    assert "Traceback" not in err
    assert main(["export", LENET, "--params", str(tmp_path / "big-0000.params"), "-o", str(tmp_path / "again")]) == 1
    assert "big-0000.params: the weights of an MXNet export" in capsys.readouterr().err
    assert not list(tmp_path.glob("again*"))


# Each mode Pillow reads from a file, with a 2x2 image whose pixels have one meaning in 8 bits, and the 8-bit
# gray and RGB values that meaning gives by the standard formulas (ITU-R 601-2 luma: L = (299 R + 587 G + 114 B)
# / 1000; CMYK: R = (255 - C) (255 - K) / 255; JPEG's YCbCr), written here rather than asked of Pillow.
RGB = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]
LUMA = [76, 150, 29, 255]
CONVERTED_MODES = [  # (mode, how to make it, file, expected gray, expected RGB)
    ("1", lambda: Image.frombytes("1", (2, 2), bytes([0b10000000, 0b01000000])), "x.png", [255, 0, 0, 255],
     [(255,) * 3, (0,) * 3, (0,) * 3, (255,) * 3]),
    ("L", lambda: Image.frombytes("L", (2, 2), bytes([0, 64, 128, 255])), "x.png", [0, 64, 128, 255],
     [(v,) * 3 for v in (0, 64, 128, 255)]),
    ("LA", lambda: Image.frombytes("LA", (2, 2), bytes([0, 0, 64, 255, 128, 9, 255, 255])), "x.png",
     [0, 64, 128, 255], [(v,) * 3 for v in (0, 64, 128, 255)]),
    ("P", lambda: _palette("P"), "x.png", LUMA, RGB),
    ("PA", lambda: _palette("PA"), "x.tif", LUMA, RGB),
    ("RGB", lambda: _rgb("RGB"), "x.png", LUMA, RGB),
    ("RGBA", lambda: _rgb("RGBA"), "x.png", LUMA, RGB),
    ("CMYK", lambda: Image.frombytes("CMYK", (2, 2), bytes([0, 255, 255, 0, 255, 0, 255, 0, 255, 255, 0, 0,
                                                              0, 0, 0, 0])), "x.tif", LUMA, RGB),
    ("YCbCr", lambda: Image.frombytes("YCbCr", (2, 2), bytes([0, 128, 128, 64, 128, 128, 128, 128, 128,
                                                                255, 128, 128])), "x.tif", [0, 64, 128, 255],
     [(v,) * 3 for v in (0, 64, 128, 255)]),
    ("I;16", lambda: Image.fromarray(onp.array([[0, 256], [32768, 65535]], onp.uint16)), "x.png", [0, 1, 128, 255],
     [(v,) * 3 for v in (0, 1, 128, 255)]),
    ("I;16B", lambda: Image.frombytes("I;16B", (2, 2), onp.array([0, 256, 32768, 65535], ">u2").tobytes()), "x.tif",
     [0, 1, 128, 255], [(v,) * 3 for v in (0, 1, 128, 255)]),
]
REFUSED_MODES = [  # (mode read back, how to make it, file, the reason said)
    ("F", lambda: Image.fromarray(onp.array([[0.0, 0.25], [0.5, 1.0]], onp.float32)), "x.tif", "floating-point"),
    ("I", lambda: Image.fromarray(onp.array([[-5, 0], [300, 70000]], onp.int32)), "x.tif", "32-bit integer"),
    ("I", lambda: Image.fromarray(onp.array([[-5, 0], [300, 1000]], onp.int16)), "x.tif", "signed 16-bit"),
    ("LAB", lambda: Image.new("LAB", (2, 2), (128, 0, 0)), "x.tif", "CIE L*a*b*"),
]


def _rgb(mode):
    return Image.frombytes("RGB", (2, 2), bytes(sum(RGB, ()))).convert(mode)


def _palette(mode):
    image = Image.frombytes("P", (2, 2), bytes([0, 1, 2, 3]))
    image.putpalette(sum(RGB, ()))
    return image.convert("PA") if mode == "PA" else image


@pytest.mark.parametrize("mode, make, name, gray, rgb", CONVERTED_MODES, ids=[m[0] for m in CONVERTED_MODES])
def test_each_mode_with_one_meaning_in_8_bits_is_converted_to_it(tmp_path, mode, make, name, gray, rgb):
    from archspec.train.images import read_image

    make().save(tmp_path / name)
    with Image.open(tmp_path / name) as image:
        assert image.mode == mode  # the file holds the mode tested
    assert read_image(tmp_path / name, 1, (2, 2)).reshape(-1).tolist() == gray
    assert [tuple(p) for p in read_image(tmp_path / name, 3, (2, 2)).reshape(-1, 3).tolist()] == rgb


@pytest.mark.parametrize("mode, make, name, why", REFUSED_MODES, ids=["F", "I32", "I16S", "LAB"])
def test_each_mode_without_one_meaning_in_8_bits_is_refused_by_path(tmp_path, mode, make, name, why):
    from archspec.spec.diagnostics import InputError
    from archspec.train.images import read_image

    make().save(tmp_path / name)
    with Image.open(tmp_path / name) as image:
        assert image.mode == mode
    for channels in (1, 3):
        with pytest.raises(InputError) as e:
            read_image(tmp_path / name, channels, (2, 2))
        assert str(e.value).startswith(f"{tmp_path / name}: mode {mode}: ") and why in str(e.value)


def test_a_float_tiff_is_refused_by_predict_and_training_not_decoded_to_zeros(tmp_path, capsys):
    from archspec import build_model

    build_model(LENET).save_parameters(str(tmp_path / "lenet.params"))
    image = Image.fromarray(onp.random.default_rng(0).random((28, 28), onp.float32))
    image.save(tmp_path / "float.tif")
    assert main(["predict", LENET, "--params", str(tmp_path / "lenet.params"), str(tmp_path / "float.tif")]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'float.tif'}: mode F: 32-bit floating-point pixels" in err and "Traceback" not in err
    for split in ("train", "test"):
        for name in ("a", "b"):
            (tmp_path / "data" / split / name).mkdir(parents=True)
            image.save(tmp_path / "data" / split / name / "float.tif")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["train", LENET, "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err  # the training split, read first
    assert "2 of 2 images cannot be read" in err and f"{tmp_path / 'data' / 'train' / 'a' / 'float.tif'}: mode F" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
