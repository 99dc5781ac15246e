"""A tiny random Coqui VITS model directory (``model.pth`` + ``config.json``), built in seconds.

Characters, not phonemes (no espeak-ng), two speakers named in ``speakers.json``. The config
names that file by a relative path, as a released model names its training paths, so the
Coqui child must find it beside the model. Its voice is noise; tests check frames, formats,
speakers, speed and quality, not words.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

SPEAKERS = ("alice", "bob")
SAMPLE_RATE = 22050


def have_coqui() -> bool:
    return importlib.util.find_spec("TTS") is not None


def build_tiny_vits(directory: Path, *, seed: int = 0) -> Path:
    """Write the model into ``directory`` (created); returns it.

    Built in a process of its own: Coqui needs the torchaudio stand-ins in ``sys.modules``,
    which must not leak into the test process (transformers would take torchaudio as present).
    """
    subprocess.run(
        [sys.executable, "-m", "tests.support.tiny_vits", str(directory), str(seed)],
        check=True,
        timeout=300,
    )
    return directory


def _build(directory: Path, seed: int) -> None:
    from corral.child.tts.torch_audio_stand_ins import ensure_torch_audio

    ensure_torch_audio()
    import torch
    from TTS.tts.configs.shared_configs import CharactersConfig
    from TTS.tts.configs.vits_config import VitsArgs, VitsConfig
    from TTS.tts.models.vits import Vits

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "speakers.json").write_text(
        json.dumps({name: i for i, name in enumerate(SPEAKERS)}), encoding="utf-8"
    )
    args = VitsArgs(
        hidden_channels=16,
        hidden_channels_ffn_text_encoder=32,
        num_layers_text_encoder=1,
        dropout_p_text_encoder=0.0,
        num_layers_posterior_encoder=1,
        num_layers_flow=1,
        resblock_type_decoder="2",
        resblock_kernel_sizes_decoder=[3],
        resblock_dilation_sizes_decoder=[[1, 3]],
        upsample_rates_decoder=[8, 8, 4],
        upsample_initial_channel_decoder=32,
        upsample_kernel_sizes_decoder=[16, 16, 8],
        spec_segment_size=8,
        init_discriminator=False,
        use_sdp=False,  # the plain duration predictor, whose output bias is set below
        use_speaker_embedding=True,
        speakers_file="speakers.json",
        speaker_embedding_channels=16,
    )
    characters = CharactersConfig(
        characters_class="TTS.tts.models.vits.VitsCharacters",
        characters="abcdefghijklmnopqrstuvwxyz",
        punctuations=" !,.?-'",
        pad="<PAD>",
        eos="<EOS>",
        bos="<BOS>",
        blank="<BLNK>",
    )
    config = VitsConfig(
        model_args=args,
        use_phonemes=False,
        text_cleaner="basic_cleaners",
        characters=characters,
        use_speaker_embedding=True,
        speakers_file="speakers.json",
    )
    config.audio.sample_rate = SAMPLE_RATE
    cwd_file = directory / "speakers.json"
    # Vits reads the speakers file when it is built; afterwards the config keeps the bare name.
    config.model_args.speakers_file = config.speakers_file = str(cwd_file)
    torch.manual_seed(seed)
    model = Vits(config)
    # Random weights predict durations under one frame, which round up to one frame at any
    # speed; about five frames a character (as a trained model has) let speed show.
    with torch.no_grad():
        model.duration_predictor.proj.weight.zero_()
        model.duration_predictor.proj.bias.fill_(math.log(5.0))
    torch.save({"model": model.state_dict()}, directory / "model.pth")
    config.model_args.speakers_file = config.speakers_file = "speakers.json"
    config.save_json(str(directory / "config.json"))


if __name__ == "__main__":
    _build(Path(sys.argv[1]), int(sys.argv[2]))
