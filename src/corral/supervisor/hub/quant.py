"""Which GGUF of a hub repository a pull means, as Ollama's and llama-server's ``repo:Q4_K_M``.

A GGUF repository usually holds one model in several quantisations (and sometimes split into
shards, or with a vision projector beside it). ``choose`` turns a tag into the files of one
model: ``Q4_K_M`` (any case) matches the quantisation in the file name, and a file's name
without ``.gguf`` (the part after ``:`` in the ids ``corral ls`` prints) matches that file.
With ``DEFAULT`` it picks Q4_K_M, else the smallest 4-bit file; a repository with one model
file gets that one. Anything else is refused with the list of what is there, rather than
downloading every quantisation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from corral.supervisor.errors import BadRequest, NotFound
from corral.supervisor.hub.cache import is_model_file, shard_names

DEFAULT = "*"
PREFERRED = "Q4_K_M"
# Quantisation names as llama.cpp writes them into file names: Q4_K_M, Q8_0, IQ4_XS,
# Q4_0_4_4, TQ1_0, MXFP4_MOE, F16, BF16, F32; between separators, or at either end.
_QUANT = re.compile(
    r"(?:^|(?<=[-._/]))(I?Q[1-8](?:_[0-9A-Z]+)*|TQ[12]_0|MXFP4(?:_MOE)?|BF16|F16|F32)(?=$|[-._/])",
    re.IGNORECASE,
)
_SHARD_SUFFIX = re.compile(r"-\d{5}-of-\d{5}$")


def stem(name: str) -> str:
    return name.removesuffix(".gguf")


def quant_of(name: str) -> str | None:
    """The quantisation tag in a GGUF file name (upper case), or None."""
    found = _QUANT.findall(_SHARD_SUFFIX.sub("", stem(name)))
    return found[-1].upper() if found else None


def _is_four_bit(tag: str | None) -> bool:
    return tag is not None and tag.startswith(("Q4", "IQ4", "MXFP4"))


def _models(sizes: Mapping[str, int]) -> dict[str, int]:
    """Model files (first shards stand for their model) with the size of all their shards.
    Vision projectors (``mmproj-*``) are not models by themselves."""
    found: dict[str, int] = {}
    for name in sizes:
        if is_model_file(name) and not name.rsplit("/", 1)[-1].lower().startswith("mmproj"):
            found[name] = sum(sizes.get(part, 0) for part in shard_names(name))
    return found


def _listing(models: Mapping[str, int]) -> str:
    return ", ".join(f"{quant_of(n) or '?'} ({n})" for n in sorted(models))


def choose(repo: str, sizes: Mapping[str, int], tag: str) -> list[str]:
    """The files to fetch for ``tag`` (or DEFAULT) from a repo whose files have ``sizes``."""
    models = _models(sizes)
    if not models:
        listed = ", ".join(sorted(sizes)[:20]) or "no files"
        raise NotFound(
            f"{repo} has no GGUF model file Corral can serve ({listed})",
            param="repo",
            code="no_model_file",
        )
    if tag == DEFAULT:
        return shard_names(_default(repo, models))
    wanted = tag.upper()
    matches = [n for n in models if n in (tag, f"{tag}.gguf") or stem(n) == tag]
    matches = matches or [n for n in models if quant_of(n) == wanted]
    if len(matches) != 1:
        how = "no file" if not matches else f"{len(matches)} files"
        raise NotFound(
            f"{how} of {repo} matches {tag!r}; it has {_listing(models)}",
            param="quant",
            code="file_not_found",
        )
    return shard_names(matches[0])


def _default(repo: str, models: Mapping[str, int]) -> str:
    if len(models) == 1:
        return next(iter(models))
    preferred = [n for n in models if quant_of(n) == PREFERRED]
    if len(preferred) == 1:
        return preferred[0]
    four_bit = sorted((size, n) for n, size in models.items() if _is_four_bit(quant_of(n)))
    if four_bit:
        return four_bit[0][1]
    raise BadRequest(
        f"{repo} has several models and no 4-bit one to pick by default; name one as "
        f"{repo}:TAG. It has {_listing(models)}",
        param="quant",
        code="quant_required",
    )
