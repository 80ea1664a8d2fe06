"""K candidates per prompt → files: latents, mp4 videos, prompt embeddings. Shared by every backend.

Layout under the output directory (the candidates stage directory)::

    prompt_embeds/<prompt_id>.safetensors   one per prompt, reused when it already exists
    latents/<candidate_id>.safetensors      final clean latents, in the transformer's layout
    videos/<candidate_id>.mp4               the decoded latents

Every file is written to a hidden temporary name and renamed, so a killed worker leaves complete
files or none, and a retried task simply overwrites. Tensors are stored with safetensors (no pickle),
with the generator version and seed as metadata.
"""

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save

from ipo_ray.data.atomic import write_bytes_atomic
from ipo_ray.data.video import write_mp4
from ipo_ray.generator.types import (
    Candidate,
    GeneratorError,
    VideoGenerator,
    candidate_seeds,
    check_num_candidates,
)

LATENTS_DIR = "latents"
VIDEOS_DIR = "videos"
PROMPT_EMBEDS_DIR = "prompt_embeds"
_LATENTS_KEY = "latents"
_EMBEDS_KEY = "prompt_embeds"
_SAFE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


def prompt_id_for(text: str) -> str:
    """A stable id for a prompt given without one: the first 16 hex digits of its sha256."""
    return "p" + hashlib.sha256(text.encode()).hexdigest()[:16]


def sample_to_files(
    generator: VideoGenerator,
    prompts: Sequence[str],
    seeds: Sequence[int],
    num_candidates: int,
    out_dir: str | os.PathLike[str],
    prompt_ids: Sequence[str] | None = None,
) -> list[Candidate]:
    """Generates K candidates per prompt, each prompt's K in one transformer batch, and writes them.

    Args:
        generator: Any backend.
        prompts: N prompt texts.
        seeds: N base seeds, one per prompt; candidate seeds come from `candidate_seeds`.
        num_candidates: K ≥ 1.
        out_dir: Directory the files go under (created if needed); candidate paths are relative to it.
        prompt_ids: N unique ids; default `prompt_id_for(text)`.

    Returns:
        N·K candidates, prompt by prompt, candidate k in seed order.

    Raises:
        GeneratorError: K < 1, lengths differ, or prompt ids repeat or are not file-name safe; raised
            before any sampling.
    """
    check_num_candidates(num_candidates)
    ids = list(prompt_ids) if prompt_ids is not None else [prompt_id_for(text) for text in prompts]
    if not len(prompts) == len(seeds) == len(ids):
        raise GeneratorError(
            f"need one seed and one id per prompt, got {len(prompts)} prompts, {len(seeds)} seeds, "
            f"{len(ids)} ids"
        )
    check_prompt_ids(ids)
    all_seeds = [candidate_seeds(int(seed), num_candidates) for seed in seeds]  # validates seeds before work
    out_dir = Path(out_dir)
    candidates = []
    for text, prompt_id, cand_seeds in zip(prompts, ids, all_seeds, strict=True):
        embeds_rel = f"{PROMPT_EMBEDS_DIR}/{prompt_id}.safetensors"
        embeds = cached_prompt_embeds(generator, text, out_dir / embeds_rel)
        latents = generator.denoise(embeds, cand_seeds)
        for k, seed in enumerate(cand_seeds):
            candidate_id = f"{prompt_id}_s{seed}"
            latent_rel = f"{LATENTS_DIR}/{candidate_id}.safetensors"
            video_rel = f"{VIDEOS_DIR}/{candidate_id}.mp4"
            # Decode one at a time: a full-size VAE decode of K videos at once needs K times the memory.
            frames = generator.decode(latents[k : k + 1])[0]
            save_latents(out_dir / latent_rel, latents[k], version=generator.version, seed=seed)
            write_mp4(out_dir / video_rel, frames, fps=generator.fps)
            candidates.append(
                Candidate(
                    candidate_id=candidate_id,
                    prompt_id=prompt_id,
                    prompt=text,
                    seed=seed,
                    generator_version=generator.version,
                    latent_path=latent_rel,
                    video_path=video_rel,
                    prompt_embeds_path=embeds_rel,
                )
            )
    return candidates


def check_prompt_ids(ids: Sequence[str]) -> None:
    """Raises `GeneratorError` unless the ids are unique and safe as file names."""
    bad = [prompt_id for prompt_id in ids if not _SAFE_ID.fullmatch(prompt_id)]
    if bad:
        raise GeneratorError(
            f"prompt ids name files, so they may hold only letters, digits, '.', '_' and '-'; got {bad[:3]}"
        )
    if len(set(ids)) != len(ids):
        raise GeneratorError("prompt ids must be unique (candidate ids and file names derive from them)")


def cached_prompt_embeds(generator: VideoGenerator, text: str, path: Path) -> torch.Tensor:
    """Loads a prompt's embeddings from `path`, or computes and saves them there.

    Raises:
        GeneratorError: The cached file belongs to a different prompt text (a prompt id was reused).
    """
    if is_cached_prompt(path, text):
        return load_prompt_embeds(path)
    embeds = generator.encode_prompt(text)
    save_prompt_embeds(path, embeds, prompt=text, version=generator.version)
    return embeds


def is_cached_prompt(path: Path, text: str) -> bool:
    """Whether `path` holds the embeddings of `text` (False when there is no file); reads only metadata.

    Raises:
        GeneratorError: The file caches another prompt text (a prompt id was reused).
    """
    if not path.is_file():
        return False
    with safe_open(str(path), framework="pt") as f:
        cached = (f.metadata() or {}).get("prompt")
    if cached != text:
        raise GeneratorError(
            f"{path} caches the embeddings of {cached!r}, not {text!r}: a prompt id was "
            f"reused for another text; give every prompt a unique id"
        )
    return True


def save_prompt_embeds(
    path: str | os.PathLike[str], embeds: torch.Tensor, *, prompt: str, version: str
) -> None:
    """Writes a prompt's embeddings (L, D) atomically as safetensors, tagged with the prompt text."""
    _write(Path(path), {_EMBEDS_KEY: embeds}, {"prompt": prompt, "generator_version": version})


def save_latents(
    path: str | os.PathLike[str], latents: torch.Tensor, *, version: str, seed: int | None
) -> None:
    """Writes one sample's latents (no batch dimension) atomically as safetensors."""
    metadata = {"generator_version": version, "seed": "" if seed is None else str(seed)}
    _write(Path(path), {_LATENTS_KEY: latents}, metadata)


def load_latents(path: str | os.PathLike[str]) -> torch.Tensor:
    """Reads latents written by `save_latents` (CPU tensor, shape as saved)."""
    return _read(Path(path))[0][_LATENTS_KEY]


def load_prompt_embeds(path: str | os.PathLike[str]) -> torch.Tensor:
    """Reads a prompt's cached embeddings, shape (L, D)."""
    return _read(Path(path))[0][_EMBEDS_KEY]


def _write(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    data = save({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, metadata=metadata)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, data)


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as f:
        return {key: f.get_tensor(key) for key in f.keys()}, f.metadata() or {}  # noqa: SIM118
