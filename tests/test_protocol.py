"""The evaluation protocol (issue 12): presets against the official code, the knobs' code paths
against hand-computed expectations, and bad knobs rejected naming the key and the file."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from scpdiff import priors, sampling
from scpdiff.cli import main
from scpdiff.config.benchmark import load_benchmark
from scpdiff.config.protocol import KNOBS, OFFICIAL_NEGATIVE_PROMPT, resolve_protocol
from scpdiff.errors import ConfigError
from scpdiff.models import tiny as tiny_models
from scpdiff.sampling.schedule import start_plan

REAL = ("cityscapes", "ade20k", "cocostuff")


# ----------------------------------------------------------------- the start rule (Table 1, Fig. 8)
def _sd_ddim():
    from diffusers import DDIMScheduler

    return DDIMScheduler(**tiny_models.sd_scheduler_config())


def _official_subset(D: int, S: int = 20, T: int = 1000) -> list[int]:
    """cldm/ddim_hacked.py:139-141 with noise_prior_inference.py:260-266, written out in numpy."""
    ddim_timesteps = np.asarray(list(range(0, T, T // S))) + 1  # make_ddim_timesteps, "uniform"
    if D == 999:
        sample_index = len(ddim_timesteps)
    else:
        sample_index = int(np.where(ddim_timesteps >= D)[0][0]) + 2
    subset_end = int(min(sample_index / ddim_timesteps.shape[0], 1) * ddim_timesteps.shape[0]) - 1
    return np.flip(ddim_timesteps[:subset_end]).tolist()


def test_official_start_20_steps_D799_runs_801_down_to_1():
    plan = start_plan(0.8, 20, "official")
    assert plan.noise_step == 799 and plan.steps == 17
    expected = list(range(801, 0, -50))  # 801, 751, ..., 1
    assert expected[0] == 801 and expected[-1] == 1 and len(expected) == 17
    assert sampling.run_timesteps(_sd_ddim(), 0.8, 20, plan).tolist() == expected == _official_subset(799)


def test_normal_prior_under_the_controlnet_rule_starts_at_901():
    for mu in (0.3, 0.85, 1.0):  # plain ControlNet inference whatever mu
        plan = start_plan(mu, 20, "official", normal=True, normal_start="controlnet")
        assert plan.noise_step is None and plan.steps == 19
        assert sampling.run_timesteps(_sd_ddim(), mu, 20, plan).tolist() == list(range(901, 0, -50)) == _official_subset(999)
    # under the paper's grid_tail rule plain inference runs the whole grid from 951
    plan = start_plan(0.5, 20, "grid_tail", normal=True, normal_start="controlnet")
    assert sampling.run_timesteps(_sd_ddim(), 0.5, 20, plan).tolist() == list(range(951, 0, -50))
    # normal_prior_start: mu starts the normal prior like the others (no Eq. 6 noising)
    assert start_plan(0.5, 20, "grid_tail", normal=True, normal_start="mu") == sampling.schedule.StartPlan(10, None)


@pytest.mark.parametrize("mu,D,t_start,steps", [
    (0.5, 499, 501, 11), (0.6, 599, 601, 13), (0.7, 699, 701, 15), (0.75, 749, 751, 16), (0.8, 799, 801, 17),
    (0.85, 849, 851, 18), (0.9, 899, 901, 19), (0.95, 949, 901, 19), (1.0, 999, 901, 19),
])
def test_each_grid_mu_under_the_official_rule(mu, D, t_start, steps):
    """The table in scpdiff.sampling.schedule's doc and docs/protocol.md, against the official code."""
    plan = start_plan(mu, 20, "official")
    ts = sampling.run_timesteps(_sd_ddim(), mu, 20, plan).tolist()
    assert (plan.noise_step, ts[0], len(ts)) == (D, t_start, steps)
    assert ts == _official_subset(D)


def test_grid_tail_noises_to_its_first_step():
    assert start_plan(0.85, 20, "grid_tail") == sampling.schedule.StartPlan(17, 801)


# ----------------------------------------------------------------- CFG: prompt, negative prompt
@pytest.fixture(scope="module")
def pipe():
    from diffusers import StableDiffusionControlNetPipeline

    torch.set_num_threads(1)
    comps = tiny_models.tiny_pipeline_components(sample_size=(4, 8), unet_channels=(16, 32), seed=0)
    p = StableDiffusionControlNetPipeline(**comps, controlnet=tiny_models.tiny_controlnet(comps["unet"]),
                                          safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    p.set_progress_bar_config(disable=True)
    return p


PALETTE = np.array([[128, 64, 128], [70, 70, 70]], dtype=np.uint8)


def test_negative_prompt_goes_through_the_cfg_branch(pipe):
    from scpdiff.models.conditioning import encode_mask

    masks = torch.zeros(2, 32, 64, dtype=torch.long)
    masks[:, :, 32:] = 1
    normal = priors.create("normal", num_classes=2, latent_shape=(4, 4, 8))
    kw = dict(palette=PALETTE, mu=1.0, num_steps=4, prompt="a road", guidance_scale=3.0)
    ours = sampling.sample_images(pipe, normal, masks, negative_prompt="blurry",
                                  generators=sampling.image_generators("n", range(2)), **kw)
    ref = pipe(prompt=["a road"] * 2, negative_prompt=["blurry"] * 2, image=encode_mask(masks, PALETTE), height=32,
               width=64, num_inference_steps=4, guidance_scale=3.0,
               generator=sampling.image_generators("n", range(2)), output_type="np").images
    np.testing.assert_array_equal(ours, (np.clip(ref, 0, 1) * 255).round().astype(np.uint8))
    plain = sampling.sample_images(pipe, normal, masks, generators=sampling.image_generators("n", range(2)), **kw)
    assert np.abs(plain.astype(int) - ours.astype(int)).max() > 0


def test_official_start_noises_to_D_and_denoises_from_the_first_grid_step(pipe, monkeypatch):
    from scpdiff.sampling import denoise

    seen = {}
    real = denoise.start_latents

    def spy(prior, masks, scheduler, t, generators, latents=None):
        seen["noise_step"], seen["timesteps"] = t, scheduler.timesteps.tolist()
        return real(prior, masks, scheduler, t, generators, latents)

    monkeypatch.setattr(denoise, "start_latents", spy)
    masks = torch.zeros(1, 32, 64, dtype=torch.long)
    prior = priors.create("spatial", num_classes=2, latent_shape=(4, 4, 8))
    prior.update(torch.randn(3, 4, 4, 8, generator=torch.Generator().manual_seed(0)), torch.zeros(3, 32, 64, dtype=torch.long))
    sampling.sample_images(pipe, prior, masks, palette=PALETTE, mu=0.8, num_steps=20, prompt="x", guidance_scale=1.0,
                           generators=sampling.image_generators("s", [0]), start_rule="official")
    assert seen == {"noise_step": 799, "timesteps": list(range(801, 0, -50))}


# ----------------------------------------------------------------- the official statistics
def _two_images():
    """Latents [2, 1, 1, 2] and masks: cell (class 0, x 0) sees {1, 3}, (0, x 1) sees {7},
    (1, x 0) nothing, (1, x 1) sees {5}; spatial: x 0 {1, 3}, x 1 {5, 7}."""
    x = torch.tensor([[[[1.0, 5.0]]], [[[3.0, 7.0]]]], dtype=torch.float64)
    labels = torch.tensor([[[0, 1]], [[0, 0]]])
    return x, labels


def _fit(name, **opts):
    prior = priors.create(name, num_classes=2, latent_shape=(1, 1, 2), **opts)
    x, labels = _two_images()
    prior.update(x, labels.repeat_interleave(8, 1).repeat_interleave(8, 2))  # masks at 8x the latent size
    return prior


def test_official_joint_fallback_on_a_hand_built_table():
    mean, var = (t[:, 0, 0].tolist() for t in _fit("joint_empty_to_spatial").fitted_stats())
    # [class][x]: (1, x 0) count 0 -> spatial (mean 2, var 1); (0, x 1) count 1 keeps 7 with var 0
    assert mean == [[2.0, 7.0], [2.0, 5.0]]
    assert var == [[1.0, 0.0], [1.0, 0.0]]


def test_paper_joint_fallback_on_the_same_table():
    mean, var = (t[:, 0, 0] for t in _fit("joint", min_count=2).fitted_stats())
    # count 1 and 0 cells (< min_count 2) take the class prior: class 0 {1, 3, 7}, class 1 {5}
    np.testing.assert_allclose(mean.numpy(), [[2.0, 11 / 3], [5.0, 5.0]])
    np.testing.assert_allclose(var.numpy(), [[1.0, np.var([1, 3, 7])], [0.0, 0.0]])


def test_official_categorical_statistic_one_token_per_image_unbiased():
    g = torch.Generator().manual_seed(3)
    values = [1.0, 4.0, 10.0]
    x = torch.stack([torch.full((1, 2, 2), v, dtype=torch.float64) for v in values])
    x[:, 0, 1, 1] = torch.randn(3, generator=g, dtype=torch.float64) + 100  # class 1: one token each
    labels = torch.zeros(3, 2, 2, dtype=torch.long)
    labels[:, 1, 1] = 1
    prior = priors.create("categorical_one_token", num_classes=2, latent_shape=(1, 2, 2))
    prior.update(x, labels.repeat_interleave(8, 1).repeat_interleave(8, 2))
    mean, var = prior.fitted_stats()
    assert prior._stats["class_count"].tolist() == [3.0, 3.0]  # one token per (image, class), not 3 per image
    np.testing.assert_allclose(mean[0, 0].item(), np.mean(values))
    np.testing.assert_allclose(var[0, 0].item(), np.var(values, ddof=1))  # torch.std: unbiased
    np.testing.assert_allclose(var[1, 0].item(), np.var(x[:, 0, 1, 1].numpy(), ddof=1))
    # the paper's statistic on the same data: every token, population variance
    paper = priors.create("categorical", num_classes=2, latent_shape=(1, 2, 2))
    paper.update(x, labels.repeat_interleave(8, 1).repeat_interleave(8, 2))
    np.testing.assert_allclose(paper.fitted_stats()[1][0, 0].item(), np.var(np.repeat(values, 3)))


def test_the_protocol_picks_the_prior_implementation():
    from scpdiff.priors.for_benchmark import prior_for_benchmark

    assert type(prior_for_benchmark(load_benchmark("smoke"), "joint")).name == "joint"  # paper preset
    official = load_benchmark("ade20k")
    assert type(prior_for_benchmark(official, "joint")).name == "joint_empty_to_spatial"
    assert type(prior_for_benchmark(official, "categorical")).name == "categorical_one_token"
    assert type(prior_for_benchmark(official, "spatial")).name == "spatial"


# ----------------------------------------------------------------- draws
def test_fid_masks_drawn_with_replacement_as_random_choices():
    from scpdiff.sampling.plan import benchmark_items

    bench = load_benchmark("ade20k")  # official: 5 images per drawn map, seed 4
    items, record = benchmark_items(bench, num_maps=3, num_images=22, repeats=None, maps=None)
    draws = random.Random(4).choices(range(3), k=4)  # 22 // 5 = 4 draws, 20 images
    assert len(set(draws)) < 4  # a map is drawn twice here
    assert record["maps"] == draws and record["seed"] == 4 and record["samples_per_mask"] == 5
    assert [i.map_index for i in items] == [m for m in draws for _ in range(5)]
    assert [i.seed_index for i in items] == list(range(20))
    names = [i.file_name(f"map{i.map_index}") for i in items]
    assert len(set(names)) == 20  # a map drawn twice numbers its images on


def test_reference_draw_with_replacement_seed_42(tmp_path):
    from scpdiff.latents.shard_encoding import split_indices

    bench = load_benchmark("cityscapes")
    assert split_indices(bench, "train", 2975) == random.Random(42).choices(range(2975), k=10000)
    assert split_indices(bench, "val", 500) == list(range(500))
    assert split_indices(load_benchmark("smoke"), "train", 64) == list(range(16))  # first_n


# ----------------------------------------------------------------- presets
ISSUE_TABLE = {  # the issue's table, by benchmark
    "cityscapes": dict(guidance_scale=4.0, inference_prompt="Realistic city road scenes", resolution=[512, 1024],
                       training_prompt="City road scenes."),
    "ade20k": dict(guidance_scale=7.5, inference_prompt="diverse images depicting various scenes",
                   resolution=[512, 512], training_prompt=None),
    "cocostuff": dict(guidance_scale=7.5, inference_prompt="Realistic image", resolution=[384, 512],
                      training_prompt="high quality, detailed."),
}


@pytest.mark.parametrize("name", REAL)
def test_official_preset_of_each_real_benchmark_is_the_issue_table(name):
    bench = load_benchmark(name)
    p, row = bench.protocol, ISSUE_TABLE[name]
    assert p.preset == "official" and set(p.sources.values()) == {"preset official"}
    assert (p["ddim_steps"], p["ddim_eta"], p["start_rule"], p["normal_prior_start"]) == (20, 0.0, "official", "controlnet")
    assert p["guidance_scale"] == row["guidance_scale"] and list(bench.resolution) == row["resolution"]
    assert p["inference_prompt"] + p["prompt_suffix"] == row["inference_prompt"] + ", best quality, extremely detailed"
    assert p["negative_prompt"] == OFFICIAL_NEGATIVE_PROMPT and p["training_prompt"] == row["training_prompt"]
    assert p["joint_fallback"] == "spatial_if_empty" and p["categorical_statistic"] == "one_token_per_image"
    assert (p["reference_draw"], p["reference_seed"], p["joint_reference"]) == ("with_replacement", 42, "quarter_of_split")
    assert (p["fid_masks"], p["fid_samples_per_mask"], p["fid_mask_seed"]) == ("with_replacement", 5, 4)
    assert bench["counts"]["fid_samples"] // p["fid_samples_per_mask"] == 10000  # 10,000 masks x 5
    assert p["fid_reference"] == "original_images" and p["ignore_labels"] == "fitted_as_class"
    assert (p["condition_colours"], p["condition_resize"]) == ("official_colour_maps", "bilinear_antialias")
    assert (p["training_mixed_precision"], p["training_weight_decay"], p["training_grad_clip"]) == ("no", 0.01, None)
    assert bench["counts"]["reference"] == 10000
    # Table 1 at the script's D = 799 (scripts/noise_prior_inference.sh:2): the settings read it
    assert p["table_mu"] == 0.8 and bench["mu"]["table"] == 0.8
    # defects stay off
    assert p["label_resize"] == "nearest" and p["cityscapes_split_walk"] is False


@pytest.mark.parametrize("kind", [*REAL, "toy"])
def test_no_preset_turns_a_defect_on_and_paper_follows_the_text(kind):
    for preset in ("official", "paper"):
        p = resolve_protocol({"preset": preset}, kind)
        for knob in KNOBS:
            if knob.defect:
                assert p[knob.name] in (False, "nearest"), (preset, knob.name)
    paper = resolve_protocol({"preset": "paper"}, kind)
    assert (paper["start_rule"], paper["joint_fallback"], paper["categorical_statistic"]) == (
        "grid_tail", "categorical_if_rare", "all_tokens")
    assert (paper["inference_prompt"], paper["prompt_suffix"], paper["negative_prompt"]) == (None, "", "")
    assert paper["normal_prior_start"] == "controlnet" and paper["ddim_steps"] == 20


def test_the_toy_keeps_its_own_settings():
    p = load_benchmark("toy").protocol
    assert p.preset == "paper" and (p["ddim_steps"], p["guidance_scale"]) == (20, 1.0)
    assert (p["reference_draw"], p["fid_masks"], p["training_mixed_precision"], p["training_grad_clip"]) == (
        "first_n", "cycle", "bf16", 1.0)
    assert load_benchmark("smoke").protocol["ddim_steps"] == 4


def test_training_knobs_reach_the_controlnet_config(tmp_path):
    from scpdiff.training.controlnet import ControlNetTrainConfig
    from scpdiff.training.stages import stage_config

    cfg = stage_config(load_benchmark("cityscapes"), "controlnet", ControlNetTrainConfig)
    assert (cfg.mixed_precision, cfg.weight_decay, cfg.max_grad_norm, cfg.lr) == ("no", 0.01, None, 1e-5)
    bad = load_benchmark("smoke")
    bad["training"]["controlnet"]["mixed_precision"] = "bf16"
    with pytest.raises(ConfigError, match="training.controlnet: mixed_precision is the protocol knob"):
        stage_config(bad, "controlnet", ControlNetTrainConfig)


# ----------------------------------------------------------------- bad input, the command
@pytest.mark.parametrize("protocol,message", [
    ({"ddim_step": 3}, "protocol: Additional properties are not allowed ('ddim_step' was unexpected)"),
    ({"start_rule": "sideways"}, "protocol/start_rule: 'sideways' is not one of ['official', 'grid_tail']"),
    ({"preset": "mine"}, "protocol/preset: 'mine' is not one of ['official', 'paper']"),
    ({"ddim_steps": 0}, "protocol/ddim_steps: 0 is less than the minimum of 1"),
    ({"table_mu": 1.5}, "protocol/table_mu: 1.5 is greater than the maximum of 1"),
])
def test_unknown_knob_or_value_names_the_key_and_the_file(tmp_path, protocol, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"extends": "toy", "name": "bad", "protocol": protocol}))
    with pytest.raises(ConfigError) as exc:
        load_benchmark(path)
    assert message in str(exc.value) and str(path) in str(exc.value)


def test_table_mu_from_the_preset_or_the_benchmarks_mu_table(tmp_path):
    from scpdiff.config import settings

    paper = tmp_path / "paper.yaml"
    paper.write_text(yaml.safe_dump({"extends": "cityscapes", "name": "paper", "protocol": {"preset": "paper"}}))
    bench = load_benchmark(paper)
    assert bench.protocol["table_mu"] == 0.85 and bench.protocol.sources["table_mu"] == "preset paper"
    # Tables 1-3 (and the further seeds) run at the resolved value
    assert {m for _, m in settings.diversity_settings(bench)} == {"0.85"}
    # the older spelling mu.table is the knob, its source the file that wrote it
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump({"extends": "cityscapes", "name": "mine", "mu": {"table": 0.7}}))
    bench = load_benchmark(mine)
    assert (bench.protocol["table_mu"], bench["mu"]["table"]) == (0.7, 0.7)
    assert bench.protocol.sources["table_mu"] == f"benchmark file {mine}"
    assert {m for _, m, _ in settings.seed_settings(bench)} <= {"0.7"}
    same = tmp_path / "same.yaml"
    same.write_text(yaml.safe_dump({"extends": "cityscapes", "name": "same", "mu": {"table": 0.8},
                                    "protocol": {"table_mu": 0.8}}))
    assert load_benchmark(same).protocol["table_mu"] == 0.8
    both = tmp_path / "both.yaml"
    both.write_text(yaml.safe_dump({"extends": "cityscapes", "name": "both", "mu": {"table": 0.85},
                                    "protocol": {"table_mu": 0.8}}))
    with pytest.raises(ConfigError, match=r"mu.table \(0.85\) and protocol/table_mu \(0.8\) disagree") as exc:
        load_benchmark(both)
    assert str(both) in str(exc.value)


def test_normal_prior_generated_once_under_the_controlnet_start():
    from scpdiff.config import settings

    bench = load_benchmark("toy")  # paper preset: normal_prior_start controlnet; grid 0.55, 0.85, 1
    rows = settings.fid_settings(bench)
    assert ("normal", "0.55") in rows and ("normal", "0.85") in rows
    made = settings.generated_settings(bench, rows)
    assert [s for s in made if s[0] == "normal"] == [("normal", "1")]
    assert len(made) == len(rows) - 2  # normal@0.85 and normal@0.55 read normal@1
    smoke = load_benchmark("smoke")  # the toy's one seed; smoke repeats Table 1 under seed 1
    assert settings.generated_settings(smoke, settings.seed_settings(smoke))[0] == ("normal", "1", 1)
    bench["protocol"]["normal_prior_start"] = "mu"
    assert settings.generated_settings(bench, rows) == rows


def test_protocol_command_prints_every_knob_with_its_source(tmp_path, capsys):
    leaf = tmp_path / "leaf.yaml"
    leaf.write_text(yaml.safe_dump({"extends": "ade20k", "name": "leaf", "protocol": {"ddim_steps": 50}}))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"benchmarks": [str(leaf)], "overrides": {"leaf": {"protocol": {"guidance_scale": 2.0}}}}))
    assert main(["protocol", "--benchmark", str(leaf), "--configfile", str(config)]) == 0
    out = json.loads(capsys.readouterr().out)
    knobs = out["knobs"]
    assert set(knobs) == {k.name for k in KNOBS}
    assert knobs["ddim_steps"] == {"value": 50, "source": f"benchmark file {leaf}", "official": 20, "code_path": True}
    assert knobs["guidance_scale"]["value"] == 2.0 and knobs["guidance_scale"]["source"] == "workflow config overrides for 'leaf'"
    assert knobs["start_rule"]["source"] == "preset official"
    assert knobs["cityscapes_split_walk"]["defect"] is True
    # the hash changes with a value, not with where it was written
    assert main(["protocol", "--benchmark", str(leaf)]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert plain["hash"] != out["hash"] and plain["knobs"]["guidance_scale"]["value"] == 7.5
    same = tmp_path / "same.yaml"
    same.write_text(yaml.safe_dump({"extends": "ade20k", "name": "same", "protocol": {"ddim_steps": 50}}))
    assert load_benchmark(same).protocol.hash == plain["hash"]


def test_docs_protocol_has_one_row_per_knob():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text()
    knobs_section = text.split("\n## The knobs\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in knobs_section.splitlines() if line.startswith("| `")]
    named = [line.split("`")[1] for line in rows]
    assert sorted(named) == sorted(k.name for k in KNOBS)
    for knob in KNOBS:  # the official file:line of the table is in the doc's row
        row = rows[named.index(knob.name)]
        assert knob.official_code.split(";")[0].split(" (")[0] in row, knob.name
        # the last column says "recorded" exactly for the knobs no stage acts on yet
        assert row.rstrip().rstrip("|").strip().endswith("recorded") == (not knob.code_path), knob.name


def test_official_condition_colours_hand_computed():
    from scpdiff.datasets import class_info
    from scpdiff.models.conditioning import condition_palette

    ade = condition_palette("ade20k", class_info("ade20k").palette, "official_colour_maps")
    # class c is stored label L = c + 1 -> (30 (L // 49), 30 (L // 7 mod 7), 30 (L mod 7)) (datasets/utils.py:367-373)
    assert ade.shape == (150, 3) and ade[0].tolist() == [0, 0, 30] and ade[149].tolist() == [90, 0, 90]
    assert ade[48].tolist() == [30, 0, 0]  # L = 49
    coco = condition_palette("cocostuff", class_info("cocostuff").palette, "official_colour_maps")
    assert coco[0].tolist() == [128, 0, 0] and coco[150].tolist() == [128, 224, 128] and coco[11].tolist() == [0, 0, 0]
    own = class_info("cityscapes").palette
    assert np.array_equal(condition_palette("cityscapes", own, "official_colour_maps"), own)  # gtFine colours
    assert np.array_equal(condition_palette("ade20k", class_info("ade20k").palette, "train_id_palette"),
                          class_info("ade20k").palette)
    toy = np.array([[1, 2, 3]], dtype=np.uint8)
    assert np.array_equal(condition_palette("toy", toy, "official_colour_maps"), toy)


def test_cityscapes_split_walk_defect_lists_train_and_val_for_both(tmp_path):
    from fixtures.datasets import make_cityscapes_fixture
    from scpdiff.datasets import open_benchmark_split

    root = make_cityscapes_fixture(tmp_path / "cs")  # train: aachen, bochum; val: frankfurt; 2 frames each
    bench = load_benchmark("cityscapes")
    bench["dataset"]["root"] = str(root)
    train, val = open_benchmark_split(bench, "train"), open_benchmark_split(bench, "val")
    assert len(train) == 4 and len(val) == 2 and not set(train.names) & set(val.names)
    bench.protocol.values["cityscapes_split_walk"] = True
    both = [open_benchmark_split(bench, s).names for s in ("train", "val")]
    assert both[0] == both[1] == train.names + val.names


def test_ignore_labels_fitted_as_a_class_of_their_own(tmp_path):
    from scpdiff.priors.for_benchmark import prior_for_benchmark

    x, labels = _two_images()
    labels = torch.where(labels == 1, 255, labels)  # class 1 of the table above is now the ignore label
    masks = labels.repeat_interleave(8, 1).repeat_interleave(8, 2)
    own = priors.create("categorical", num_classes=1, latent_shape=(1, 1, 2), ignore_slot=None)
    fitted = priors.create("categorical", num_classes=2, latent_shape=(1, 1, 2), ignore_slot=1)
    for p in (own, fitted):
        p.update(x, masks)
    mean, var = (t[:, 0].tolist() for t in fitted.fitted_stats())
    assert mean == [11 / 3, 5.0] and var[1] == 0.0  # the ignore token {5} has its own class slot
    tok_mean, _ = fitted.token_stats(fitted.latent_labels(masks[:1]))
    assert tok_mean[0, 0, 0].tolist() == pytest.approx([11 / 3, 5.0])
    tok_mean, tok_var = own.token_stats(own.latent_labels(masks[:1]))  # excluded: spatial stats at x 1
    assert tok_mean[0, 0, 0].tolist() == pytest.approx([11 / 3, 6.0]) and tok_var[0, 0, 0, 1].item() == 1.0
    # saved and read back with its slot; the protocol of each benchmark decides
    fitted.save(tmp_path / "c.safetensors")
    assert priors.load(tmp_path / "c.safetensors").ignore_slot == 1
    assert prior_for_benchmark(load_benchmark("smoke"), "spatial").ignore_slot is None  # toy: excluded
    official = prior_for_benchmark(load_benchmark("cityscapes"), "spatial")
    assert (official.num_classes, official.ignore_slot) == (20, 19)


def test_original_images_fid_reference_follows_the_generation_draw(tmp_path):
    from fixtures.datasets import make_cityscapes_fixture
    from scpdiff.datasets import open_benchmark_split
    from scpdiff.metrics.scoring import original_image_reference
    from scpdiff.sampling.plan import benchmark_items

    root = make_cityscapes_fixture(tmp_path / "cs", size_hw=(64, 128))
    bench = load_benchmark("cityscapes")
    bench["dataset"]["root"] = str(root)
    bench["counts"]["fid_samples"] = 20
    val = open_benchmark_split(bench, "val")
    images, rows = original_image_reference(bench, val)
    items, _ = benchmark_items(bench, len(val), None, None, None)
    # one reference row per generated image, for the image of the same val map (repeats included)
    assert len(rows) == len(items) == 20
    assert [images.indices[r] for r in rows] == [i.map_index for i in items]
    assert images[0][0].shape == (64, 128, 3)  # the file as it is, not the benchmark's 512x1024


def test_protocol_command_shows_the_scorers_segmenter_settings(tmp_path, capsys):
    import json

    from scpdiff.cli import main

    config = tmp_path / "site.yaml"
    config.write_text("benchmarks: [ade20k]\noverrides:\n  ade20k:\n    segmenter: {kind: upernet_101, normalization: caffe_bgr, backend: mmseg}\n")
    assert main(["protocol", "--benchmark", "ade20k", "--configfile", str(config)]) == 0
    seg = json.loads(capsys.readouterr().out)["segmenter"]
    assert seg == {"kind": "upernet_101", "backend": "mmseg", "normalization": "caffe_bgr", "miou_average": "accumulated"}
    assert main(["protocol", "--benchmark", "cityscapes"]) == 0
    seg = json.loads(capsys.readouterr().out)["segmenter"]
    assert seg["kind"] == "drn_d_105" and seg["backend"] == "torch" and seg["normalization"] is None


# ----------------------------------------------------------------- reference images, label resizing
def test_joint_reference_is_the_official_quarter_of_the_split():
    from scpdiff.priors.for_benchmark import reference_latent_set
    from scpdiff.utils.draws import quarter_of_split

    # noise_prior.py:205-208 on a split of 130: list(range(130))[i::64] for i < 16, worker by worker
    assert quarter_of_split(130) == [0, 64, 128, 1, 65, 129, 2, 66, 3, 67, 4, 68, 5, 69, 6, 70, 7, 71, 8, 72,
                                     9, 73, 10, 74, 11, 75, 12, 76, 13, 77, 14, 78, 15, 79]
    # Cityscapes' 2,975 train images = 46 x 64 + 31: 46 x 16 + 16 = 752, each index once, whatever N
    quarter = quarter_of_split(2975)
    assert len(quarter) == len(set(quarter)) == 752 and all(j % 64 < 16 for j in quarter)
    official = load_benchmark("cityscapes")
    assert [reference_latent_set(official, p) for p in ("spatial", "categorical", "joint")] == [
        "train", "train", "train_joint"]
    assert reference_latent_set(load_benchmark("toy"), "joint") == "train"  # paper: the N drawn images


def test_label_resize_bilinear_blends_class_ids_as_torchvision_resize():
    from scpdiff.datasets.folders import bilinear_label_resize

    # 2x2 -> 4x4 upsampling, by hand: pixel centres at -0.25, 0.25, 0.75, 1.25 (clamped) blend the ids
    ids = np.array([[0, 4], [8, 12]])
    up = bilinear_label_resize(ids, (0, 0, 2, 2), (4, 4), num_classes=19, ignore_index=255)
    assert up.tolist() == [[0, 1, 3, 4], [2, 3, 5, 6], [6, 7, 9, 10], [8, 9, 11, 12]]
    # a class-0 | class-10 edge halved with antialiasing: ids 1 and 9 appear, neither in the map
    edge = np.array([[0, 0, 10, 10]] * 4)
    assert bilinear_label_resize(edge, (0, 0, 4, 4), (2, 2), 19, 255).tolist() == [[1, 9], [1, 9]]
    # a class next to the ignore label blends into no class: ignore (0 | 255 -> 128)
    assert bilinear_label_resize(np.array([[0, 255]]), (0, 0, 2, 1), (1, 1), 19, 255).tolist() == [[255]]


def test_label_resize_knob_reaches_the_dataset(tmp_path):
    fixtures = pytest.importorskip("fixtures")
    from scpdiff.datasets import open_benchmark_split

    root = fixtures.make_cityscapes_fixture(tmp_path / "cityscapes")
    masks = {}
    for value in ("nearest", "bilinear"):
        path = tmp_path / f"{value}.yaml"
        path.write_text(yaml.safe_dump({"extends": "cityscapes", "name": value, "dataset": {"root": str(root)},
                                        "resolution": [24, 48], "protocol": {"label_resize": value}}))
        ds = open_benchmark_split(load_benchmark(path), "val")
        assert ds.label_resize == value
        masks[value] = ds[0][1]
    nearest, bilinear = masks["nearest"], masks["bilinear"]
    # the fixture's maps are 64x128 with 8-pixel blocks: shrunk to 24x48, bilinear blends block edges
    assert nearest.shape == bilinear.shape == (24, 48) and not np.array_equal(nearest, bilinear)
    assert set(np.unique(bilinear)) <= set(range(19)) | {255}


def test_condition_resize_bilinear_antialias_by_hand():
    from scpdiff.models.conditioning import conditions_from_sources

    # a black | white edge (classes 0 | 1) halved: antialiased bilinear = a triangle filter of
    # half-width 2 input pixels; output pixel 0 is centred at x = 1 and weighs the pixels centred at
    # 0.5, 1.5, 2.5 by 0.75, 0.75, 0.25 (normalised by 1.75): white share 0.25 / 1.75 = 1/7
    mask = np.array([[0, 0, 1, 1]] * 4)
    cond = conditions_from_sources([mask], np.array([[0, 0, 0], [255, 255, 255]]), (2, 2))
    assert cond.shape == (1, 3, 2, 2)
    assert cond[0, :, 0].numpy() == pytest.approx(np.array([[1 / 7, 6 / 7]] * 3), abs=1e-6)
    # a map already at the size is colour-coded only (hard edges, as nearest)
    same = conditions_from_sources([mask], np.array([[0, 0, 0], [255, 255, 255]]), (4, 4))
    assert same[0, 0].numpy().tolist() == [[0.0, 0.0, 1.0, 1.0]] * 4


def test_condition_resize_knob_reaches_generation_and_training(tmp_path):
    fixtures = pytest.importorskip("fixtures")
    from scpdiff.datasets import open_benchmark_split
    from scpdiff.datasets.folders import crop_box, nearest_resize

    root = fixtures.make_cityscapes_fixture(tmp_path / "cityscapes")
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump({"extends": "cityscapes", "name": "small", "dataset": {"root": str(root)},
                                    "resolution": [24, 48]}))
    bench = load_benchmark(path)
    assert bench.protocol["condition_resize"] == "bilinear_antialias"
    ds = open_benchmark_split(bench, "val")
    source = ds.source_mask(0)
    # the stored size, the same ids the nearest-resized mask takes its pixels from
    assert source.shape == (64, 128)
    assert np.array_equal(nearest_resize(source, crop_box((128, 64), (24, 48), "stretch"), (24, 48)), ds[0][1])


def test_generation_conditions_on_the_soft_edged_condition(pipe):
    from scpdiff.models.conditioning import conditions_from_sources

    # the map at twice the size, soft-resized: the pipeline sees exactly that condition
    source = np.zeros((64, 128), dtype=np.int64)
    source[:, 61:] = 1
    soft = conditions_from_sources([source] * 2, PALETTE, (32, 64))
    masks = torch.zeros(2, 32, 64, dtype=torch.long)
    masks[:, :, 31:] = 1  # the nearest resize of the same map (rows 61/62 -> 30.5/31)
    normal = priors.create("normal", num_classes=2, latent_shape=(4, 4, 8))
    kw = dict(palette=PALETTE, mu=1.0, num_steps=2, prompt="a road", guidance_scale=1.0)
    ours = sampling.sample_images(pipe, normal, masks, conditions=soft,
                                  generators=sampling.image_generators("n", range(2)), **kw)
    ref = pipe(prompt=["a road"] * 2, image=soft, height=32, width=64, num_inference_steps=2, guidance_scale=1.0,
               generator=sampling.image_generators("n", range(2)), output_type="np").images
    np.testing.assert_array_equal(ours, (np.clip(ref, 0, 1) * 255).round().astype(np.uint8))
    with pytest.raises(Exception, match=r"conditions must be \[2, 3, 32, 64\]"):
        sampling.sample_images(pipe, normal, masks, conditions=soft[:, :, :16],
                               generators=sampling.image_generators("n", range(2)), **kw)


def test_toy_source_mask_is_the_stored_map(tmp_path):
    from scpdiff.datasets.toy import ToyDataset, write_toy_dataset

    write_toy_dataset(tmp_path / "toy", num_train=2, num_val=1, resolution=(32, 64), seed=0)
    half = ToyDataset(tmp_path / "toy", "val", resolution=(16, 32))
    source = half.source_mask(0)
    assert source.shape == (32, 64) and half[0][1].shape == (16, 32)
    # nearest halving keeps the pixel under each target centre: rows/columns 1, 3, 5, ...
    assert np.array_equal(source[1::2, 1::2], half[0][1])


def test_protocol_command_shows_the_bootstrap_settings(tmp_path, capsys):
    import json

    from scpdiff.cli import main

    config = tmp_path / "site.yaml"
    config.write_text("benchmarks: [toy]\noverrides:\n  toy:\n    uncertainty: {resamples: 200, level: 0.9}\n")
    assert main(["protocol", "--benchmark", "toy", "--configfile", str(config)]) == 0
    assert json.loads(capsys.readouterr().out)["uncertainty"] == {"resamples": 200, "seed": 0, "level": 0.9}
    assert main(["protocol", "--benchmark", "cityscapes"]) == 0
    assert json.loads(capsys.readouterr().out)["uncertainty"] == {"resamples": 1000, "seed": 0, "level": 0.95}
    # the documented defaults are the resolved ones
    doc = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text()
    for key, value in (("resamples", 1000), ("seed", 0), ("level", 0.95)):
        assert f"| `uncertainty.{key}` | {value} |" in doc
