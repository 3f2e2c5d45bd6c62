"""Latents: images encoded into the diffusion model's latent space, and the latent shard files.

May import :mod:`scpdiff.errors` and :mod:`scpdiff.utils` only.

    latents = encode_images(vae, images_uint8, generators=image_generators("encode:train", idx))
    write_latent_shard("train-0000.safetensors", LatentShard(latents, masks, names))
"""

from .encoding import encode_images, images_to_vae_input
from .shards import LatentShard, read_latent_shard, write_latent_shard

__all__ = ["LatentShard", "encode_images", "images_to_vae_input", "read_latent_shard", "write_latent_shard"]
