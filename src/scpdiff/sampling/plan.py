"""The plan of one generation run: which images, named how, seeded how, and the latents they pair with.

FID/mIoU run (default): ``counts.fid_samples`` images, image ``i`` from val label map
``i mod L`` (L val maps), named ``{name}.png``, or ``{name}_{r:02d}.png`` (r = i div L) when more
images than maps are asked for. Diversity run (``repeats=K, maps=M``, Table 3): K samples of
each of the first M val maps, named ``{name}_{k:02d}.png``. Image ``i`` (diversity: item
``j*K + k``) has its own seed, ``image_seed(setting, i, sampling.seed)`` with setting
``"{variant}:mu={mu}"`` (diversity: ``"...:diversity"``), so any sharding gives the same images.

Under the protocol knob ``fid_masks: with_replacement`` (the official run,
noise_prior_inference.py:240 with ``--seed 4``) the FID/mIoU run instead draws
``num_images // fid_samples_per_mask`` val maps with replacement (Python's
``random.Random(fid_mask_seed).choices``, as the official script) and makes
``fid_samples_per_mask`` images of each draw (:func:`scpdiff.config.protocol.fid_mask_draw`, which the
``original_images`` FID reference shares); a map's images are named ``{name}_{r:02d}.png`` with
``r`` counting its images over all its draws. The draw is recorded in ``generation.json``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config.protocol import fid_mask_draw
from ..errors import InputError
from ..latents.shards import check_same_provenance, read_latent_shard, resolution_text


# the two namings, recorded in generation.json ("file_names") so scoring never has to guess
SINGLE, SAMPLES = "{name}.png", "{name}_{k:02d}.png"


@dataclass(frozen=True)
class Item:
    """One image to generate: the label map it is drawn for, its name suffix and its seed index."""

    map_index: int
    suffix: int | None  # None: "{name}.png"; k: "{name}_{k:02d}.png"
    seed_index: int

    def file_name(self, map_name: str) -> str:
        return f"{map_name}.png" if self.suffix is None else f"{map_name}_{self.suffix:02d}.png"


def plan_items(num_maps: int, num_images: int | None, repeats: int | None, maps: int | None) -> list[Item]:
    """Every image of the run, in order (module doc); shards take contiguous slices of this list."""
    L = num_maps
    if L == 0:
        raise InputError("the split has no label maps")
    if (repeats is None) != (maps is None):
        raise InputError("--repeats and --maps go together (a diversity run)")
    if repeats is not None:
        if repeats < 1 or maps < 1:
            raise InputError(f"--repeats and --maps must be >= 1, got {repeats}, {maps}")
        return [Item(j, k, j * repeats + k) for j in range(min(maps, L)) for k in range(repeats)]
    if num_images is None or num_images < 1:
        raise InputError(f"the number of images must be >= 1, got {num_images}")
    if num_images <= L:
        return [Item(i, None, i) for i in range(num_images)]
    return [Item(i % L, i // L, i) for i in range(num_images)]


def drawn_items(map_of_image: list[int]) -> list[Item]:
    """The FID items of a with-replacement mask draw (module doc): image ``i`` for map
    ``map_of_image[i]``, numbered on per map."""
    seen: dict[int, int] = {}
    items = []
    for i, m in enumerate(map_of_image):
        r = seen.get(m, 0)
        seen[m] = r + 1
        items.append(Item(m, r, i))
    return items


def benchmark_items(bench, num_maps: int, num_images: int | None, repeats: int | None,
                    maps: int | None) -> tuple[list[Item], dict | None]:
    """The run's items under the benchmark's protocol, and the recorded mask draw (None: no draw)."""
    proto = bench.protocol
    n = int(num_images if num_images is not None else bench["counts"]["fid_samples"])  # 0 is refused, not defaulted
    if repeats is None and maps is None and proto["fid_masks"] == "with_replacement":
        if num_maps == 0:
            raise InputError("the split has no label maps")
        per = int(proto["fid_samples_per_mask"])
        if n < per:
            raise InputError(f"{n} images cannot hold one draw of {per} samples per mask")
        map_of_image = fid_mask_draw(proto, n, num_maps)
        draw = {"rule": "with_replacement", "seed": int(proto["fid_mask_seed"]), "samples_per_mask": per,
                "maps": map_of_image[::per]}
        return drawn_items(map_of_image), draw
    return plan_items(num_maps, n, repeats, maps), None


def setting_name(variant: str, mu: float, diversity: bool) -> str:
    return f"{variant}:mu={mu:g}" + (":diversity" if diversity else "")


def check_scaling_factor(source: str, recorded: str | None, vae) -> None:
    """Latents scaled for another VAE would put the prior on the wrong scale: refuse them."""
    if recorded:
        expected = float(vae.config.scaling_factor)
        if abs(float(recorded) - expected) > 1e-6 * max(1.0, abs(expected)):
            raise InputError(
                f"{source}: latents were scaled by {recorded}, but this model's VAE uses {expected} "
                "(encoded with another VAE?)"
            )


def read_paired_latents(paths: list[str], vae, resolution: tuple[int, int] | None = None) -> dict:
    """Image name -> latent ``[4, h, w]`` from encode-latents shards (the oracle's x0, Eq. 4).

    Every shard must match this model's VAE scaling, the benchmark ``resolution`` and the first
    shard's provenance (VAE, dataset), each mismatch naming the files.
    """
    by_name, first = {}, None
    for path in paths:
        shard = read_latent_shard(path)
        check_scaling_factor(str(path), shard.metadata.get("scaling_factor"), vae)
        if resolution is not None and shard.metadata["resolution"] != resolution_text(resolution):
            raise InputError(f"{path}: latents of {shard.metadata['resolution']} images, the benchmark's "
                             f"resolution is {resolution_text(resolution)}")
        if first is None:
            first = (str(path), shard.metadata)
        else:
            check_same_provenance(first[1], first[0], shard.metadata, str(path), "latent shards")
        by_name.update(zip(shard.names, shard.latents))
    return by_name
