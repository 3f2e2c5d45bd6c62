"""Latents: images encoded into the diffusion model's latent space (:mod:`.encoding`), the latent
shard files (:mod:`.shards`) and one shard of a benchmark split encoded (:mod:`.shard_encoding`).

May import :mod:`scpdiff.models`, :mod:`scpdiff.datasets`, :mod:`scpdiff.utils` and :mod:`scpdiff.errors`.

    latents = encode_images(vae, images_uint8, generators=image_generators("encode:train", idx))
    write_latent_shard("train-0000.safetensors", LatentShard(latents, masks, names))
"""

from .encoding import encode_images, images_to_vae_input
from .shards import LatentShard, read_latent_shard, write_latent_shard

__all__ = ["LatentShard", "encode_images", "images_to_vae_input", "read_latent_shard", "write_latent_shard"]
