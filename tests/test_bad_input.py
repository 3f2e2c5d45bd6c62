"""Bad input never becomes a silent wrong number (issue 15): every command checks what it is given
before it works, exits non-zero with a message naming the file and the problem, and leaves nothing
behind (no output, no temporary, no moved user file); outputs honour the umask.

Each case runs the CLI in-process (``scpdiff.cli.main``) the way the other command tests do, with
the networks' loaders replaced by a tripwire where the check must come before them."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from scpdiff.cli import main
from scpdiff.errors import InputError
from scpdiff.latents.shards import LatentShard, write_latent_shard
from scpdiff.utils import files as F
from fixtures import smoke_benchmark
from test_prior_commands import bench_file  # noqa: F401  (fixture)
from test_score import PALETTE_SEG, _palette_images, lpips_cache, toy  # noqa: F401  (fixtures)

RES = (64, 128)  # the score fixture's benchmark resolution


# ---------------------------------------------------------------------------------------- helpers
def listing(folder) -> list[str]:
    """Every name below ``folder`` (hidden ones too), to compare before and after a refused command."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def fail(capsys, argv, code=1) -> str:
    """Run the CLI, assert exit ``code`` (argparse usage errors exit 2), return stderr."""
    capsys.readouterr()
    if code == 2:
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in argv])
        assert exc.value.code == 2
    else:
        assert main([str(a) for a in argv]) == code
    return capsys.readouterr().err


@pytest.fixture()
def no_networks(monkeypatch):
    """Loading any network fails the test: the checks must come first."""
    import scpdiff.metrics.folder_score as FS

    def tripwire(*a, **k):
        raise AssertionError("a network was loaded before the inputs were checked")

    for name in ("load_segmenter", "load_inception", "load_lpips"):
        monkeypatch.setattr(FS, name, tripwire)


def score_argv(bench, images, out, *extra):
    return ["score", "--images", images, "--benchmark", bench, "--no-fid", "--segmenter", PALETTE_SEG,
            "--device", "cpu", "--out", out, *extra]


def label_png(path, array, mode="L"):
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode).save(path)


def masks_dir(folder, items, edit=None):
    folder.mkdir(parents=True, exist_ok=True)
    for idx, (_, mask, name) in enumerate(items):
        m = mask.astype(np.uint8)
        if edit is not None and idx == 1:
            m = edit(m)
        if isinstance(m, Image.Image):
            m.save(folder / f"{name}.png")
        else:
            label_png(folder / f"{name}.png", m)
    return folder


# ------------------------------------------------------------------------------- score: names
def test_diversity_names_are_never_guessed_without_label_maps(toy, tmp_path, capsys, no_networks):
    root, bench, items = toy
    images = tmp_path / "other_method"
    images.mkdir()
    for i in range(4):  # another method's output: val_00000.png ... one image per label map
        Image.new("RGB", RES[::-1], (i, 0, 0)).save(images / f"val_{i:05d}.png")
    out = tmp_path / "div.json"
    err = fail(capsys, ["score", "--images", images, "--benchmark", bench, "--diversity", "--no-fid",
                        "--no-segmentation", "--out", out])
    assert "val_00000.png" in err and "not guessed" in err and "--masks" in err
    assert listing(tmp_path) == listing(tmp_path) and not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other_method"]


def test_generation_json_names_the_samples(toy, tmp_path, capsys, lpips_cache):  # noqa: F811
    # the same kind of names, in a folder written by generate: its record decides, nothing guessed
    root, bench, items = toy
    images = _palette_images(tmp_path / "gen", items, samples=2)
    (images / "generation.json").write_text(json.dumps({"file_names": "{name}_{k:02d}.png"}))
    out = tmp_path / "div.json"
    assert main(["score", "--images", str(images), "--benchmark", str(bench), "--diversity", "--no-fid",
                 "--no-segmentation", "--cache", str(lpips_cache), "--device", "cpu", "--out", str(out)]) == 0
    row = json.loads(out.read_text())
    assert row["diversity_maps"] == 4 and row["diversity_samples"] == 2


def test_a_name_that_is_both_a_map_and_a_sample_is_refused(toy, tmp_path, capsys, no_networks):
    root, bench, items = toy
    masks = masks_dir(tmp_path / "masks", items)
    name = items[0][2]
    # a second label map named like sample 1 of the first one
    label_png(masks / f"{name}_01.png", items[0][1])
    images = _palette_images(tmp_path / "gen", items)
    Image.open(images / f"{name}.png").save(images / f"{name}_01.png")
    out = tmp_path / "x.json"
    err = fail(capsys, score_argv(bench, images, out, "--masks", masks))
    assert f"{name}_01.png" in err and "could be label map" in err and f"sample 1 of label map '{name}'" in err
    assert not out.exists()


# ------------------------------------------------------------------------------ score: masks
@pytest.mark.parametrize("case, edit, message", [
    ("smaller", lambda m: m[::2, ::2], "is 32x64 (HxW), expected 64x128"),
    ("label_out_of_range", lambda m: np.where(m == 0, 40, m), "label(s) [40] outside [0, 9)"),
    ("colour", lambda m: Image.fromarray(np.stack([m] * 3, -1)), "single-channel"),
    ("truncated", None, "cannot decode"),
    ("empty_file", None, "cannot read image file"),
    ("bilevel", lambda m: Image.fromarray(m > 0), "got mode 1"),
])
def test_bad_label_maps_are_refused_naming_the_file(toy, tmp_path, capsys, no_networks, case, edit, message):
    root, bench, items = toy
    masks = masks_dir(tmp_path / "masks", items, edit)
    bad = masks / f"{items[1][2]}.png"
    if case == "truncated":
        bad.write_bytes(bad.read_bytes()[:-40])
    if case == "empty_file":
        bad.write_bytes(b"")
    images = _palette_images(tmp_path / "gen", items)
    before = listing(tmp_path)
    out = tmp_path / "x.json"
    err = fail(capsys, score_argv(bench, images, out, "--masks", masks))
    assert str(bad) in err and message in err, err
    assert listing(tmp_path) == before


def test_a_sixteen_bit_label_map_keeps_its_ids_and_is_range_checked(toy, tmp_path, capsys, no_networks):
    root, bench, items = toy
    masks = masks_dir(tmp_path / "masks", items, lambda m: Image.fromarray(np.where(m == 0, 300, m.astype(np.uint16)).astype(np.uint16)))
    images = _palette_images(tmp_path / "gen", items)
    err = fail(capsys, score_argv(bench, images, tmp_path / "x.json", "--masks", masks))
    # 300 is not scaled or clipped to 255 (the ignore label) or wrapped: it is reported as it is
    assert f"{items[1][2]}.png" in err and "[300]" in err


# ----------------------------------------------------------------------------- score: images
def _rgba(image, alpha):
    a = np.full(image.shape[:2], alpha, np.uint8)
    return Image.fromarray(np.dstack([image, a]), "RGBA")


@pytest.mark.parametrize("case, message", [
    ("truncated", "cannot decode"),
    ("sixteen_bit_grey", "16-bit image"),
    ("sixteen_bit_rgb", "16-bit image"),
    ("transparent", "transparent pixel"),
    ("wrong_size", "is 32x64 (HxW), expected 64x128 (the benchmark's resolution)"),
    ("not_an_image", "cannot read image file"),
])
def test_bad_images_fail_before_any_network_loads(toy, tmp_path, capsys, no_networks, case, message):
    root, bench, items = toy
    images = _palette_images(tmp_path / "gen", items)
    bad = images / f"{items[2][2]}.png"
    rgb = np.asarray(Image.open(bad))
    if case == "truncated":
        bad.write_bytes(bad.read_bytes()[: len(bad.read_bytes()) // 2])
    elif case == "sixteen_bit_grey":
        Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(bad)
    elif case == "sixteen_bit_rgb":
        _write_png16_rgb(bad, rgb.astype(np.uint16) * 257)
    elif case == "transparent":
        _rgba(rgb, 128).save(bad)
    elif case == "wrong_size":
        Image.fromarray(rgb[::2, ::2]).save(bad)
    elif case == "not_an_image":
        bad.write_text("hello")
    before = listing(tmp_path)
    err = fail(capsys, score_argv(bench, images, tmp_path / "x.json", "--split", "val"))
    assert str(bad) in err and message in err, err
    assert listing(tmp_path) == before


def _write_png16_rgb(path, array):
    """A 48-bit RGB PNG written by hand (PIL cannot write one; it reads it as 8-bit RGB)."""
    import struct
    import zlib

    h, w, _ = array.shape
    raw = b"".join(b"\0" + array[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_opaque_alpha_and_palette_images_are_read_by_the_documented_rule(toy, tmp_path):
    from scpdiff.datasets.folders import read_rgb_array

    root, bench, items = toy
    images = _palette_images(tmp_path / "gen", items)
    rgb = np.asarray(Image.open(images / f"{items[0][2]}.png"))
    _rgba(rgb, 255).save(tmp_path / "opaque.png")
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(tmp_path / "palette.png")
    np.testing.assert_array_equal(read_rgb_array(tmp_path / "opaque.png"), rgb)  # alpha dropped
    pal = Image.open(tmp_path / "palette.png")
    want = np.asarray(pal.getpalette(), np.uint8).reshape(-1, 3)[np.asarray(pal)]
    np.testing.assert_array_equal(read_rgb_array(tmp_path / "palette.png"), want)  # through its palette


def test_fid_of_a_single_image_is_refused_naming_the_folder(toy, tmp_path, capsys, no_networks):
    root, bench, items = toy
    images = _palette_images(tmp_path / "gen", items[:1])
    err = fail(capsys, ["score", "--images", images, "--benchmark", bench, "--no-segmentation", "--allow-subset",
                        "--out", tmp_path / "x.json"])
    assert str(images) in err and "FID needs at least 2 images, found 1" in err


# ---------------------------------------------------------------------------- score: outputs
def test_score_out_an_existing_folder_is_refused_before_any_work(toy, tmp_path, capsys, no_networks):
    root, bench, items = toy
    images = _palette_images(tmp_path / "gen", items)
    out = tmp_path / "results"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    before = listing(tmp_path)
    err = fail(capsys, score_argv(bench, images, out, "--split", "val"))
    assert str(out) in err and "must be a file but a folder" in err
    assert listing(tmp_path) == before and (out / "mine.txt").read_text() == "keep"


@pytest.mark.parametrize("option, value, message", [
    ("--batch-size", "0", "must be a whole number >= 1, got 0"),
    ("--batch-size", "-3", "must be a whole number >= 1, got -3"),
    ("--workers", "-1", "must be a whole number >= 0, got -1"),
    ("--kid-subset-size", "1", "must be a whole number >= 2"),
    ("--kid-subsets", "0", "must be a whole number >= 1, got 0"),
    ("--batch-size", "four", "'four' is not an integer"),
])
def test_score_numeric_options_are_checked(toy, tmp_path, capsys, option, value, message):
    root, bench, items = toy
    images = _palette_images(tmp_path / "gen", items)
    err = fail(capsys, score_argv(bench, images, tmp_path / "x.json", option, value), code=2)
    assert option in err and message in err
    assert not (tmp_path / "x.json").exists()


# ------------------------------------------------------------------- priors: merge and fit
@pytest.fixture()
def prior_bench(bench_file):  # noqa: F811  (resolution 32x64, 19 classes)
    return bench_file


PROV = {"dataset": "cityscapes", "vae": "models/sd21/vae", "scaling_factor": "0.18215"}


def shard(path, seed=0, size=(32, 64), labels=19, **meta):
    from scpdiff.config.benchmark import load_benchmark

    g = torch.Generator().manual_seed(seed)
    h, w = size
    f = load_benchmark("smoke").latent_factor  # the fixture's benchmark is smoke's at 32x64: its VAE's grid
    x = torch.randn(3, 4, h // f, w // f, generator=g)
    m = torch.randint(0, labels, (3, h, w), generator=g)
    write_latent_shard(path, LatentShard(x, m, [f"s{seed}_{i}" for i in range(3)], {**PROV, **meta}))
    return path


def fit(bench, out, *latents, variant="joint"):
    return ["fit-prior", "--benchmark", bench, "--variant", variant, "--latents", *latents, "--out", out]


@pytest.mark.parametrize("key, value", [("vae", "models/other/vae"), ("scaling_factor", "0.13025"),
                                        ("dataset", "ade20k")])
def test_merge_priors_refuses_shards_of_another_provenance_naming_both(prior_bench, tmp_path, capsys, key, value):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    assert main([str(v) for v in fit(prior_bench, a, shard(tmp_path / "la.safetensors", 0))]) == 0
    assert main([str(v) for v in fit(prior_bench, b, shard(tmp_path / "lb.safetensors", 1, **{key: value}))]) == 0
    before = listing(tmp_path)
    out = tmp_path / "merged.safetensors"
    err = fail(capsys, ["merge-priors", "--out", out, a, b])
    assert str(a) in err and str(b) in err and key in err and value in err
    assert listing(tmp_path) == before


def test_merge_priors_refuses_another_resolution(tmp_path, capsys):
    import scpdiff.priors as P

    paths = []
    for i, res in enumerate(("32x64", "64x128")):
        p = P.create("spatial", num_classes=19, latent_shape=(4, 4, 8))
        p.update(torch.zeros(1, 4, 4, 8), torch.zeros(1, 32, 64, dtype=torch.long))
        p.provenance.update(PROV, resolution=res)
        p.save(tmp_path / f"p{i}.safetensors")
        paths.append(tmp_path / f"p{i}.safetensors")
    err = fail(capsys, ["merge-priors", "--out", tmp_path / "m.safetensors", *paths])
    assert "resolution" in err and "64x128" in err and str(paths[0]) in err and str(paths[1]) in err
    assert not (tmp_path / "m.safetensors").exists()


def test_merge_priors_out_an_existing_folder_is_refused(prior_bench, tmp_path, capsys):
    a = tmp_path / "a.safetensors"
    assert main([str(v) for v in fit(prior_bench, a, shard(tmp_path / "la.safetensors"))]) == 0
    out = tmp_path / "priors"
    out.mkdir()
    before = listing(tmp_path)
    err = fail(capsys, ["merge-priors", "--out", out, a])
    assert str(out) in err and "folder" in err and listing(tmp_path) == before


@pytest.mark.parametrize("case, message", [
    ("dataset", "records dataset 'ade20k'"),
    ("resolution", "latents of 64x128 images, the benchmark's resolution is 32x64"),
    ("labels", "outside [0, 19)"),
])
def test_fit_prior_refuses_mixed_or_foreign_shards(prior_bench, tmp_path, capsys, case, message):
    good = shard(tmp_path / "good.safetensors")
    if case == "dataset":
        bad = shard(tmp_path / "bad.safetensors", 1, dataset="ade20k")
    elif case == "resolution":
        bad = shard(tmp_path / "bad.safetensors", 1, size=(64, 128))
    else:
        bad = shard(tmp_path / "bad.safetensors", 1, labels=40)
    before = listing(tmp_path)
    out = tmp_path / "p.safetensors"
    err = fail(capsys, fit(prior_bench, out, good, bad))
    assert str(bad) in err and message in err, err
    assert listing(tmp_path) == before


def test_fit_prior_batch_size_zero_is_refused_not_defaulted(prior_bench, tmp_path, capsys):
    err = fail(capsys, fit(prior_bench, tmp_path / "p.safetensors", shard(tmp_path / "l.safetensors"))
               + ["--batch-size", "0"], code=2)
    assert "--batch-size" in err and ">= 1, got 0" in err and not (tmp_path / "p.safetensors").exists()


# ------------------------------------------------------------------------------- generate
@pytest.fixture()
def no_pipeline(monkeypatch):
    import scpdiff.sampling.shard as S

    def tripwire(*a, **k):
        raise AssertionError("the pipeline was loaded before --out was checked")

    monkeypatch.setattr(S, "load_pipeline", tripwire)
    monkeypatch.setattr(S, "open_benchmark_split", tripwire)


def gen_argv(bench, out, *extra):
    return ["generate", "--benchmark", bench, "--base", "nowhere", "--controlnet", "nowhere", "--variant", "normal",
            "--mu", "0.85", "--out", out, *extra]


def test_generate_out_an_existing_file_is_refused_and_left_as_it_is(toy, tmp_path, capsys, no_pipeline):
    root, bench, items = toy
    out = tmp_path / "report.pdf"
    out.write_bytes(b"%PDF precious")
    before = listing(tmp_path)
    err = fail(capsys, gen_argv(bench, out))
    assert str(out) in err and "must be a folder but a file" in err
    assert listing(tmp_path) == before and out.read_bytes() == b"%PDF precious"


def test_generate_never_replaces_a_folder_it_did_not_write(toy, tmp_path, capsys, no_pipeline):
    root, bench, items = toy
    out = tmp_path / "holiday"
    out.mkdir()
    (out / "beach.png").write_bytes(b"x")
    before = listing(tmp_path)
    err = fail(capsys, gen_argv(bench, out))
    assert str(out) in err and "not an earlier output" in err and listing(tmp_path) == before


@pytest.mark.parametrize("option, value, message", [
    ("--mu", "0", "must be in (0, 1], got 0"), ("--mu", "1.5", "must be in (0, 1]"), ("--mu", "nan", "not a finite"),
    ("--num-images", "0", ">= 1, got 0"), ("--batch-size", "0", ">= 1, got 0"), ("--repeats", "-2", ">= 1"),
    ("--shard", "-1", ">= 0, got -1"), ("--num-shards", "0", ">= 1, got 0"),
])
def test_generate_numeric_options_are_checked(toy, tmp_path, capsys, option, value, message):
    root, bench, items = toy
    argv = gen_argv(bench, tmp_path / "out")
    if option == "--mu":
        argv[argv.index("--mu") + 1] = value
    else:
        argv += [option, value]
    err = fail(capsys, argv, code=2)
    assert option in err and message in err and list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------- atomic writers
@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_outputs_honour_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        F.write_text_atomic(tmp_path / "a.json", "{}")
        with F.atomic_dir(tmp_path / "shard") as d:
            (d / "x.png").write_bytes(b"x")
        plain = tmp_path / "plain.txt"
        plain.write_text("")
        (tmp_path / "plain_dir").mkdir()
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(tmp_path / "a.json") == mode(plain) == 0o666 & ~umask
    assert mode(tmp_path / "shard") == mode(tmp_path / "plain_dir") == 0o777 & ~umask


def test_a_prior_written_by_the_cli_is_readable_by_the_group(prior_bench, tmp_path):
    old = os.umask(0o022)
    try:
        assert main([str(v) for v in fit(prior_bench, tmp_path / "p.safetensors", shard(tmp_path / "l.safetensors"))]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "p.safetensors").stat().st_mode) == 0o644


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temporaries_of_a_killed_job_are_removed_by_the_rerun(tmp_path):
    host = F._host()
    dead = tmp_path / f".0000.{host}-{_dead_pid()}.abcd1234.tmp"
    dead.mkdir()
    (dead / "a.png").write_bytes(b"half")
    live = tmp_path / f".0000.{host}-{os.getpid()}.efgh5678.tmp"  # a running job's: kept
    live.mkdir()
    elsewhere = tmp_path / f".0000.otherhost-{_dead_pid()}.ijkl9012.tmp"  # another host's: unknown, kept
    elsewhere.mkdir()
    dead_file = tmp_path / f".m.{host}-{_dead_pid()}.zz.tmp.json"
    dead_file.write_text("{")
    with F.atomic_dir(tmp_path / "0000") as d:
        (d / "b.png").write_bytes(b"whole")
    F.write_text_atomic(tmp_path / "m.json", "{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["0000", "m.json", live.name, elsewhere.name])


def test_a_killed_shard_leaves_no_hidden_folder_after_the_rerun(tmp_path):
    # a real process killed with SIGKILL while inside atomic_dir, then the rerun
    target = tmp_path / "0001"
    code = ("import os, signal; from scpdiff.utils.files import atomic_dir\n"
            f"with atomic_dir({str(target)!r}) as d:\n"
            "    (d / 'a.png').write_bytes(b'half'); os.kill(os.getpid(), signal.SIGKILL)\n")
    subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".0001.") and leftovers[0].endswith(".tmp")
    with F.atomic_dir(target) as d:
        (d / "a.png").write_bytes(b"whole")
    assert [p.name for p in tmp_path.iterdir()] == ["0001"]


def test_atomic_writers_never_replace_a_path_of_another_kind(tmp_path):
    folder = tmp_path / "table.csv"
    folder.mkdir()
    with pytest.raises(InputError, match="must be a file but a folder"):
        F.write_text_atomic(folder, "x")
    file = tmp_path / "shard"
    file.write_text("mine")
    with pytest.raises(InputError, match="must be a folder but a file"):
        with F.atomic_dir(file) as d:
            (d / "a").write_text("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard", "table.csv"] and file.read_text() == "mine"
    with pytest.raises(InputError, match="is a file, not a folder"):
        F.write_text_atomic(file / "inside.json", "{}")


# -------------------------------------------------------------------------- validate-config
def test_validate_config_checks_that_the_dataset_root_exists(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    b = smoke_benchmark()
    b.update(name="lab_city")
    b["dataset"] = {"kind": "cityscapes", "root": "data/cityscapes_missing"}
    path = tmp_path / "lab_city.yaml"
    path.write_text(yaml.safe_dump(b))
    err = fail(capsys, ["validate-config", path])
    assert str(path) in err and "dataset.root data/cityscapes_missing is not a folder" in err
    # the content alone is fine
    assert main(["validate-config", "--schema-only", str(path)]) == 0


def test_validate_config_checks_the_segmenter_checkpoint(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    b = smoke_benchmark()
    b.update(name="lab_seg")
    b["segmenter"] = {**b["segmenter"], "checkpoint": "models/seg_missing.pth"}
    path = tmp_path / "lab_seg.yaml"
    path.write_text(yaml.safe_dump(b))
    err = fail(capsys, ["validate-config", path])
    assert str(path) in err and "segmenter.checkpoint models/seg_missing.pth does not exist" in err


def test_a_file_of_only_overrides_is_a_workflow_config_not_a_benchmark(tmp_path, capsys):
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump({"overrides": {"cityscapes": {"dataset": {"root": "/data/cs"}}}}))
    err = fail(capsys, ["validate-config", path])
    assert str(path) in err and "overrides for ['cityscapes'] name no benchmark" in err
    assert "benchmark config" not in err


@pytest.mark.parametrize("option", ["--ref-stats", "--segmenter-checkpoint"])
def test_score_missing_reference_or_checkpoint_is_named_before_any_network(toy, tmp_path, capsys, no_networks, option):
    root, bench, items = toy
    images = _palette_images(tmp_path / "gen", items)
    missing = tmp_path / "nowhere.bin"
    argv = ["score", "--images", images, "--benchmark", bench, "--split", "val", "--segmenter", PALETTE_SEG,
            "--out", tmp_path / "x.json", option, missing]
    err = fail(capsys, argv)
    assert f"{option} {missing}: file does not exist" in err and not (tmp_path / "x.json").exists()


def test_prepare_data_out_an_existing_folder_is_refused_before_the_checks(toy, tmp_path, capsys, monkeypatch):
    import scpdiff.datasets.index as I

    monkeypatch.setattr(I, "check_split", lambda *a, **k: pytest.fail("the dataset was read before --out was checked"))
    root, bench, items = toy
    out = tmp_path / "index.json"
    out.mkdir()
    err = fail(capsys, ["prepare-data", "--benchmark", bench, "--out", out])
    assert str(out) in err and "must be a file but a folder" in err and list(out.iterdir()) == []


def test_encode_latents_out_an_existing_folder_is_refused_before_the_vae_loads(toy, tmp_path, capsys):
    root, bench, items = toy
    out = tmp_path / "latents"
    out.mkdir()
    err = fail(capsys, ["encode-latents", "--benchmark", bench, "--base", tmp_path / "no_model", "--split", "val",
                        "--out", out])
    assert str(out) in err and "must be a file but a folder" in err and list(out.iterdir()) == []


# ------------------------------------------------------------------ a job whose Snakemake dies
def test_a_job_stops_and_cleans_up_when_its_snakemake_is_killed(tmp_path):
    from scpdiff.utils.workflow_watch import EXIT_CODE, WORKFLOW_PID_ENV, workflow_tag

    workflow = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # stands for Snakemake
    ready = tmp_path / "ready"
    code = (
        "import time; from pathlib import Path\n"
        "from scpdiff.utils.workflow_watch import watch_workflow\n"
        "from scpdiff.utils.files import atomic_dir\n"
        "watch_workflow()\n"
        f"with atomic_dir({str(tmp_path / 'shard')!r}) as d:\n"
        "    (d / 'a.png').write_bytes(b'half')\n"
        f"    Path({str(ready)!r}).touch()\n"
        "    time.sleep(600)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), **{WORKFLOW_PID_ENV: workflow_tag(workflow.pid)})
    job = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline and job.poll() is None:
            time.sleep(0.05)
        assert ready.exists()
        workflow.kill()  # kill -9 of "Snakemake" alone
        workflow.wait()
        rc = job.wait(timeout=60)
    finally:
        workflow.kill()
        job.kill()
    assert rc == EXIT_CODE and "is gone; stopping" in job.stderr.read()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ready"]  # no shard, no temporary


@pytest.mark.parametrize("meta, message", [
    ({"vae": "models/other/vae"}, "records vae 'models/other/vae'"),
    ({"scaling_factor": "0.13025"}, "latents were scaled by 0.13025"),
    ({"size": (64, 128)}, "latents of 64x128 images, the benchmark's resolution is 32x64"),
])
def test_oracle_latents_of_another_provenance_are_refused(tmp_path, meta, message):
    from types import SimpleNamespace

    from scpdiff.sampling.plan import read_paired_latents

    vae = SimpleNamespace(config=SimpleNamespace(scaling_factor=0.18215))
    a = shard(tmp_path / "val_0.safetensors", 0)
    size = meta.pop("size", (32, 64))
    b = shard(tmp_path / "val_1.safetensors", 1, size=size, **meta)
    with pytest.raises(InputError) as exc:
        read_paired_latents([a, b], vae, (32, 64))
    assert str(b) in str(exc.value) and message in str(exc.value)
    assert len(read_paired_latents([a], vae, (32, 64))) == 3


def test_scoring_reads_the_naming_generate_records():
    # metrics may not import sampling (same rank): the two spellings must stay equal
    from scpdiff.metrics import images
    from scpdiff.sampling import plan

    assert (images.SINGLE, images.SAMPLES) == (plan.SINGLE, plan.SAMPLES)
    assert plan.Item(0, None, 0).file_name("a") == plan.SINGLE.format(name="a")
    assert plan.Item(0, 3, 0).file_name("a") == plan.SAMPLES.format(name="a", k=3)


@pytest.mark.parametrize("argv", [
    ["train-vae", "--benchmark", "smoke"], ["train-base", "--benchmark", "smoke", "--vae", "no/vae"],
    ["train-segmenter", "--benchmark", "smoke"], ["train-controlnet", "--benchmark", "smoke", "--base", "no/base"],
    ["demo", "--samples", "1", "--steps", "1"],
])
def test_model_and_demo_folders_never_replace_a_folder_they_did_not_write(tmp_path, capsys, argv):
    """The kind of `generate --out` onto a user's folder, for every command that writes a folder:
    refused before any work, the folder left as it was."""
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "chapter1.tex").write_text("mine")
    before = listing(tmp_path)
    err = fail(capsys, [*argv, "--out", out])
    assert str(out) in err and "not an earlier output" in err and listing(tmp_path) == before


def test_an_empty_or_earlier_model_folder_may_be_replaced(tmp_path):
    from scpdiff.training.stages import EARLIER_MODEL

    (tmp_path / "empty").mkdir()
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "config.json").write_text("{}")
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "config.yaml").write_text("mine")
    assert EARLIER_MODEL(tmp_path / "empty") and EARLIER_MODEL(tmp_path / "vae")
    assert not EARLIER_MODEL(tmp_path / "user")


def test_a_model_folder_appears_only_whole(tmp_path):
    """The model, its log and training.json are renamed onto --out together: a job killed (here: a
    failure) while writing leaves no folder that looks finished."""
    from scpdiff.training.loop import LoopConfig, LoopResult
    from scpdiff.training.stages import _save_finished, state_dir_for

    out = tmp_path / "vae"
    state = state_dir_for(out)
    state.mkdir(parents=True)
    (state / "train_log.csv").write_text("step,loss\n1,0.5\n")
    result = LoopResult(step=1, finished=True, seconds=1.0, log=[{"step": 1, "loss": 0.5}])

    def crash(folder):
        (folder / "config.json").write_text("{}")
        raise KeyboardInterrupt  # as a kill between the weights and the summary would

    with pytest.raises(KeyboardInterrupt):
        _save_finished(out, LoopConfig(), result, True, crash)
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == [state.name]
    _save_finished(out, LoopConfig(), result, True, lambda folder: (folder / "config.json").write_text("{}"))
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "train_log.csv", "training.json"]
