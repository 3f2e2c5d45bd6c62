"""The evaluation protocol: every choice the paper leaves open, as a named knob with two presets.

A benchmark's ``protocol:`` section names a preset and may set single knobs::

    protocol:
      preset: official          # what AIR-DISCOVER/SCP-Diff-Toolkit @ 859f671 runs (the default)
      guidance_scale: 5.0       # one knob overridden

``official`` is what the authors' code runs; ``paper`` is what the paper's text says where it says
something and the official value where it is silent. Knobs marked *defect* reproduce a bug of the
official code; no preset turns them on, a user does so explicitly to measure what it did.
docs/protocol.md has one row per knob (the paper's words, the official file:line, each preset's
value and why); :data:`KNOBS` below is the one table both it and the schema are built from.

    proto = resolve_protocol(bench_data["protocol"], "cityscapes", origins={"guidance_scale": "my.yaml"})
    proto.values["ddim_steps"], proto.sources["ddim_steps"], proto.hash
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import ConfigError
from ..utils.draws import draw_with_replacement

OFFICIAL_REF = "AIR-DISCOVER/SCP-Diff-Toolkit@859f671"
PRESETS = ("official", "paper")
DEFAULT_PRESET = "official"
SAME = object()  # a paper value that is the official one (the paper is silent)

# the official negative prompt (noise_prior_inference.py:217, ControlNet's n_prompt)
OFFICIAL_NEGATIVE_PROMPT = (
    "longbody, lowres, bad anatomy, bad hands, missing fingers, extra digit, fewer digits, cropped, "
    "worst quality, low quality"
)


@dataclass(frozen=True)
class Knob:
    """One protocol choice. ``official``/``paper``: a value, or a mapping dataset kind -> value with
    ``"*"`` for every other kind (``paper`` = :data:`SAME`: the official value)."""

    name: str
    schema: dict
    official: Any
    paper: Any = SAME
    paper_words: str = "not stated"
    official_code: str = ""
    why: str = ""
    code_path: bool = True  # False: recorded in the resolved protocol, not yet acted on by any stage
    defect: bool = False

    def preset_value(self, preset: str, dataset_kind: str) -> Any:
        value = self.official if preset == "official" or self.paper is SAME else self.paper
        if isinstance(value, PerDataset):
            return value.get(dataset_kind, value.get("*"))
        return value


class PerDataset(dict):
    """A preset value that depends on the dataset kind (``"*"``: any other kind)."""


def _enum(*values) -> dict:
    return {"enum": list(values)}


STRING_OR_NULL = {"type": ["string", "null"]}

KNOBS: tuple[Knob, ...] = (
    Knob("ddim_steps", {"type": "integer", "minimum": 1}, 20,
         official_code="noise_prior_inference.py:211,235",
         why="the grid every mu is read on: 20 steps of stride 50 (t = 951, 901, ..., 1)"),
    Knob("ddim_eta", {"type": "number", "minimum": 0}, 0.0,
         official_code="noise_prior_inference.py:213,235",
         why="deterministic DDIM"),
    Knob("start_rule", _enum("official", "grid_tail"), "official", paper="grid_tail",
         paper_words="sec. 4.1: 'introduce noise for muT steps ... denoises the last muT steps'",
         official_code="noise_prior_inference.py:136-137,260-266; cldm/ddim_hacked.py:139-141",
         why="official: q_sample to D = round(mu*T) - 1, then the DDIM grid up to its first step >= D "
             "(subset_end); grid_tail: the last round(mu*S) grid steps, noised to their first step "
             "(scpdiff.sampling.schedule)"),
    Knob("table_mu", {"type": "number", "exclusiveMinimum": 0, "maximum": 1}, 0.8, paper=0.85,
         paper_words="Figs. 3, 6: 'Prior (0.85T)'; Table 1 does not state its mu",
         official_code="scripts/noise_prior_inference.sh:2 (--diffusion_steps 799: D = 799, mu = 0.8); "
                       "noise_prior_inference.py:136-137",
         why="the mu of Tables 1-3 (D = mu*T); a benchmark's own `mu.table` sets this knob "
             "(scpdiff.config.benchmark; both written and different is an error)"),
    Knob("normal_prior_start", _enum("controlnet", "mu"), "controlnet",
         paper_words="sec. 5.2: 'normal prior (which reduces to standard finetuned ControlNet inference scheme)'",
         official_code="noise_prior_inference.py:126-128,261-262 (D must be 999)",
         why="Table 1's normal row is plain ControlNet inference whatever mu; 'mu' starts it at mu like the other priors"),
    Knob("guidance_scale", {"type": "number", "minimum": 0},
         PerDataset({"cityscapes": 4.0, "*": 7.5}),
         official_code="README.md:129; scripts/noise_prior_inference.sh:6; noise_prior_inference.py:316",
         why="classifier-free guidance weight (1 = no unconditional branch)"),
    Knob("inference_prompt", STRING_OR_NULL,
         PerDataset({"cityscapes": "Realistic city road scenes", "ade20k": "diverse images depicting various scenes",
                     "cocostuff": "Realistic image", "*": None}),
         paper=None,
         paper_words="App. A: 'the text prompt was kept the same as the training procedure'",
         official_code="noise_prior_inference.py:29-33,215",
         why="null: the benchmark's training `prompt`"),
    Knob("prompt_suffix", {"type": "string"}, ", best quality, extremely detailed", paper="",
         paper_words="App. A: the training prompt at inference",
         official_code="noise_prior_inference.py:216,253",
         why="appended to the inference prompt (the conditional CFG branch)"),
    Knob("negative_prompt", {"type": "string"}, OFFICIAL_NEGATIVE_PROMPT, paper="",
         paper_words="App. A: the training prompt at inference (no negative prompt named)",
         official_code="noise_prior_inference.py:217,254",
         why="the unconditional CFG branch's prompt ('' = plain CFG)"),
    Knob("training_prompt", STRING_OR_NULL,
         PerDataset({"cityscapes": "City road scenes.", "cocostuff": "high quality, detailed.", "*": None}),
         paper=None,
         paper_words="App. A: 'City road scenes', 'Photorealistic and diverse images depicting various scenes', "
                     "'high quality, detailed'",
         official_code="datasets/cityscapes.py:85; datasets/ade20k.py:59; datasets/cocostuff.py:58",
         why="the ControlNet fine-tuning prompt (null: the benchmark's `prompt`); the official strings end in a full stop"),
    Knob("joint_fallback", _enum("spatial_if_empty", "categorical_if_rare"), "spatial_if_empty",
         paper="categorical_if_rare",
         paper_words="sec. 4.3: 'where the sample size for a given tuple is excessively small, we revert to "
                     "taking the statistics from class prior'",
         official_code="noise_prior_inference.py:99-116,169 (fallback='spatial')",
         why="spatial_if_empty: only cells seen 0 times take the spatial prior (a cell seen once keeps std 0); "
             "categorical_if_rare: cells below prior_options.min_count take the class prior, unseen classes "
             "the spatial one (scpdiff.priors.joint)"),
    Knob("categorical_statistic", _enum("one_token_per_image", "all_tokens"), "one_token_per_image",
         paper="all_tokens",
         paper_words="sec. 4.2: 'we organize distinct sets N_c for each class ... comprise encoded tokens', Eq. 7",
         official_code="noise_prior.py:56-91,107-110",
         why="one_token_per_image: one random token per (image, class), unbiased std (torch.std); "
             "all_tokens: every token, population variance"),
    Knob("reference_draw", _enum("with_replacement", "first_n"), "with_replacement",
         paper_words="sec. 5.1: 'We pre-compute the proposed priors on N=10,000 images'",
         official_code="noise_prior.py:49,54,116-117 (random.choices, seed 42)",
         why="which N train images the priors see: N seeded draws with replacement, or the first N"),
    Knob("reference_seed", {"type": "integer", "minimum": 0}, 42,
         official_code="noise_prior.py:233", why="seed of the reference draw"),
    Knob("joint_reference", _enum("quarter_of_split", "reference_draw"), "quarter_of_split", paper="reference_draw",
         paper_words="sec. 4.3: 'For N reference images' (the same N as the other priors)",
         official_code="noise_prior.py:189-208 (indices i::64 for i < 16)",
         why="the official joint prior ignores N: it sees every image whose index mod 64 is below 16 "
             "(encode-latents --split train_joint, scpdiff.utils.draws.quarter_of_split)"),
    Knob("fid_masks", _enum("with_replacement", "cycle"), "with_replacement",
         paper_words="App. A: 'we sampled 50,000 images for each group of experimental setting'",
         official_code="noise_prior_inference.py:240 (random.choices), scripts/noise_prior_inference.sh:2 (seed 4)",
         why="which val label maps the FID images are drawn for: seeded draws with replacement, "
             "or every map in turn (scpdiff.sampling.plan)"),
    Knob("fid_samples_per_mask", {"type": "integer", "minimum": 1}, 5,
         official_code="noise_prior_inference.py:240,245; scripts/noise_prior_inference.sh:4 (--batch_size 5)",
         why="images per drawn mask (the official batch repeats one mask)"),
    Knob("fid_mask_seed", {"type": "integer", "minimum": 0}, 4,
         official_code="scripts/noise_prior_inference.sh:2; noise_prior_inference.py:202",
         why="seed of the FID mask draw"),
    Knob("fid_reference", _enum("original_images", "val_at_resolution"), "original_images",
         official_code="noise_prior_inference.py:275 (real/ links the original file of each sample)",
         why="the 'real' FID set: the original full-resolution image of every generated sample, or the "
             "val images at the benchmark resolution once each (scpdiff.metrics.scoring)"),
    Knob("condition_colours", _enum("official_colour_maps", "train_id_palette"), "official_colour_maps",
         official_code="datasets/cityscapes.py:52,73 (gtFine_color.png); datasets/utils.py:163-388; "
                       "datasets/ade20k.py:47-48; datasets/cocostuff.py:48-49",
         why="the RGB image ControlNet is conditioned on (scpdiff.models.conditioning; Cityscapes void "
             "classes stay black: train ids do not keep them apart)"),
    Knob("condition_resize", _enum("bilinear_antialias", "nearest"), "bilinear_antialias",
         official_code="datasets/cityscapes.py:78-80; datasets/ade20k.py:54-56; datasets/cocostuff.py:53-55",
         why="the colour condition resized like an image (soft class edges) or label-exact "
             "(scpdiff.models.conditioning.conditions_from_sources)"),
    Knob("ignore_labels", _enum("fitted_as_class", "excluded"), "fitted_as_class",
         official_code="noise_prior.py:67-91,147-151 (256 class slots)",
         why="whether void/ignore tokens get statistics of their own (one more class slot) or are "
             "left out of the fit and take the spatial statistics"),
    Knob("training_mixed_precision", _enum("no", "bf16", "fp16"), "no",
         official_code="tutorial_train.py:61 (pl.Trainer default precision 32)",
         why="fine-tuning precision"),
    Knob("training_weight_decay", {"type": "number", "minimum": 0}, 0.01,
         official_code="cldm/cldm.py:422 (torch.optim.AdamW default)", why="AdamW weight decay"),
    Knob("training_grad_clip", {"type": ["number", "null"], "exclusiveMinimum": 0}, None,
         official_code="tutorial_train.py:61 (no gradient_clip_val)", why="null: no gradient clipping"),
    Knob("label_resize", _enum("nearest", "bilinear"), "nearest",
         official_code="datasets/cityscapes.py:89; datasets/ade20k.py:60; datasets/cocostuff.py:59 (Resize of class ids)",
         why="defect: bilinear resizing blends class ids at boundaries into other ids "
             "(scpdiff.datasets.folders.bilinear_label_resize)",
         defect=True),
    Knob("cityscapes_split_walk", {"type": "boolean"}, False,
         official_code="datasets/cityscapes.py:20-49 (the `continue` after removing test/ skips the split filter)",
         why="defect: 'train' and 'val' both list train+val (3,475 images)", defect=True),
)
KNOB_BY_NAME = {k.name: k for k in KNOBS}


def protocol_json_schema() -> dict:
    """The JSON schema of a ``protocol:`` section (an unknown knob or value is an error)."""
    props = {"preset": {"enum": list(PRESETS), "default": DEFAULT_PRESET}}
    props.update({k.name: dict(k.schema) for k in KNOBS})
    return {"type": "object", "additionalProperties": False, "properties": props,
            "description": "the evaluation protocol (scpdiff.config.protocol, docs/protocol.md)"}


@dataclass
class Protocol:
    """A fully resolved protocol: every knob's value and where it came from."""

    preset: str
    values: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)
    dataset_kind: str = "*"

    @property
    def hash(self) -> str:
        """sha256 (16 hex digits) of the preset-independent values: equal values, equal hash."""
        blob = json.dumps(self.values, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def section(self) -> dict:
        """The resolved values as a ``protocol:`` section (every knob explicit)."""
        return {"preset": self.preset, **self.values}

    def as_json(self) -> dict:
        """What ``scpdiff protocol`` prints."""
        return {
            "preset": self.preset,
            "hash": self.hash,
            "official_code": OFFICIAL_REF,
            "knobs": {
                k.name: {"value": self.values[k.name], "source": self.sources[k.name],
                         "official": k.preset_value("official", self.dataset_kind),
                         "code_path": k.code_path, **({"defect": True} if k.defect else {})}
                for k in KNOBS
            },
        }


def resolve_protocol(section: Mapping[str, Any] | None, dataset_kind: str, source: str = "<benchmark>",
                     origins: Mapping[str, str] | None = None) -> Protocol:
    """The protocol of a benchmark of ``dataset_kind`` from its (schema-valid) ``protocol:`` section.

    ``origins``: knob -> where its value was written (a file, the workflow config); a knob set in
    ``section`` without one is "benchmark file"; every other knob is "preset <name>".
    """
    section = dict(section or {})
    preset = section.pop("preset", DEFAULT_PRESET)
    if preset not in PRESETS:
        raise ConfigError(f"{source}: protocol/preset: {preset!r} is not one of {list(PRESETS)}")
    unknown = sorted(set(section) - set(KNOB_BY_NAME))
    if unknown:
        raise ConfigError(f"{source}: protocol: unknown knob(s) {unknown}; known: {sorted(KNOB_BY_NAME)}")
    values, sources = {}, {}
    for knob in KNOBS:
        if knob.name in section:
            values[knob.name] = section[knob.name]
            sources[knob.name] = (origins or {}).get(knob.name, "benchmark file")
        else:
            values[knob.name] = knob.preset_value(preset, dataset_kind)
            sources[knob.name] = f"preset {preset}"
    return Protocol(preset, values, sources, dataset_kind)


def fid_mask_draw(protocol: Protocol, num_images: int, num_maps: int) -> list[int] | None:
    """The val map of every FID image under ``fid_masks: with_replacement``, in image order
    (``num_images // fid_samples_per_mask`` draws, each repeated ``fid_samples_per_mask`` times);
    None under ``cycle``. Generation and the ``original_images`` FID reference share this draw."""
    if protocol["fid_masks"] != "with_replacement":
        return None
    per = int(protocol["fid_samples_per_mask"])
    draws = draw_with_replacement(num_maps, int(num_images) // per, int(protocol["fid_mask_seed"]))
    return [m for m in draws for _ in range(per)]


def knob_origins(layers: list[tuple[str, Mapping | None]]) -> dict[str, str]:
    """Knob -> the first of ``layers`` (name, protocol section), most specific first, that sets it."""
    out: dict[str, str] = {}
    for name, section in layers:
        for key in (section or {}):
            if key != "preset":
                out.setdefault(key, name)
    return out

