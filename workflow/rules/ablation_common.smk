"""The protocol ablation's definitions (workflow/rules/ablation.smk holds its rules): which knobs a
benchmark flips (scpdiff.config.ablation) and where each flip's files are."""

from scpdiff.config.ablation import applied_flips, flipped_benchmark

# knobs that change which reference images the priors are fitted on: their flips encode their own
ABLATION_REENCODE = ("reference_draw", "joint_reference", "label_resize", "cityscapes_split_walk")


def ablation_dir(b, knob):
    return f"{WORK}/{b}/ablation/{knob}"


def ablation_knobs(b):
    return [f.knob for f in applied_flips(BENCH[b])]


def ablation_flip(b, knob):
    return next(f for f in applied_flips(BENCH[b]) if f.knob == knob)


def ablation_bench(b, knob):
    """The flipped benchmark (the same one the flip's benchmark.yaml holds)."""
    return flipped_benchmark(BENCH[b], knob)


def ablation_latent_set(b, knob):
    return reference_latent_set(ablation_bench(b, knob), ablation_flip(b, knob).prior)


def ablation_latents(b, knob):
    """The reference latents the flip's prior is fitted on: its own, or the benchmark's."""
    latent_set = ablation_latent_set(b, knob)
    folder = ablation_dir(b, knob) if knob in ABLATION_REENCODE else f"{WORK}/{b}"
    return [f"{folder}/latents/{latent_set}/{s}.safetensors" for s in shard_ids(num_reference_shards(b))]


def ablation_ref_stats(b, knob):
    """The flip's own FID reference statistics where it changes the reference set."""
    variant = ablation_bench(b, knob)
    own = knob == "fid_reference" or (knob == "fid_masks" and variant.protocol["fid_reference"] == "original_images")
    return f"{ablation_dir(b, knob)}/fid_ref.npz" if own else f"{WORK}/{b}/fid_ref.npz"


def ablation_mu(b, knob):
    return fmt_mu(ablation_bench(b, knob)["mu"]["table"])


def ablation_generate_inputs(wildcards):
    b, knob = wildcards.bench, wildcards.knob
    prior = ablation_flip(b, knob).prior
    inputs = {"bench": f"{ablation_dir(b, knob)}/benchmark.yaml", "index": data_index(wildcards),
              "base": base_dir(wildcards), "controlnet": controlnet_dir(wildcards)}
    if get_prior_class(prior).needs_fit:
        inputs["prior"] = f"{ablation_dir(b, knob)}/prior.safetensors"
    if get_prior_class(prior).requires_latents:
        inputs["latents"] = latent_shards(b, "val")
    return inputs


def ablation_default_scores(b):
    """The study's own score file of every prior the flips run (Table 1's setting at table_mu)."""
    mu = BENCH[b]["mu"]["table"]
    priors = dict.fromkeys(ablation_flip(b, k).prior for k in ablation_knobs(b))
    return {p: score_file(b, p, sample_mu(b, p, mu), "fid") for p in priors}
