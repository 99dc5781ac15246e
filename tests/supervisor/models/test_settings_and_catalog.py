"""Settings precedence and the model catalog's id and path rules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from corral.supervisor.errors import BadRequest, ModelNotFound
from corral.supervisor.models.catalog import FALLBACK_KV_BYTES_PER_TOKEN, Catalog, validate_model_id
from corral.supervisor.models.demo_model import DEMO_SIZE
from corral.supervisor.models.gguf_header import BATCH_TOKENS
from corral.supervisor.settings import load_settings
from tests.conftest import have_demo
from tests.support.tiny_gguf import build_vocab, write_tiny_gguf


def test_flags_beat_env_beat_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.toml"
    config.write_text('port = 1111\nhost = "0.0.0.0"\nn_ctx = 1024\n[models.x]\nbackend = "fake"\n')
    monkeypatch.setenv("CORRAL_PORT", "2222")
    monkeypatch.setenv("CORRAL_N_CTX", "2048")
    settings = load_settings(config, port=3333)
    assert settings.port == 3333
    assert settings.n_ctx == 2048
    assert settings.host == "0.0.0.0"
    assert settings.models["x"].backend == "fake"


def test_unknown_setting_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("prot = 1\n")
    with pytest.raises(ValueError, match="prot"):
        load_settings(config)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "nope.toml")


@pytest.mark.parametrize("bad", ["", "../x", "a/../../b", "/etc/passwd", "a b", "x" * 129, "-lead"])
def test_invalid_model_ids(bad: str) -> None:
    with pytest.raises(BadRequest):
        validate_model_id(bad)


def test_catalog_lists_files_and_refuses_symlinks_out(tmp_path: Path) -> None:
    models = tmp_path / "models"
    (models / "org").mkdir(parents=True)
    (models / "org" / "one.gguf").write_bytes(b"GGUF")
    outside = tmp_path / "secret.gguf"
    outside.write_bytes(b"GGUF")
    os.symlink(outside, models / "escape.gguf")
    settings = load_settings(
        None, data_dir=tmp_path / "data", models_dir=models, demo_model=False, speech_models=False
    )
    catalog = Catalog(settings)
    assert set(catalog.entries()) == {"org/one"}
    assert catalog.resolve("org/one").path == models / "org" / "one.gguf"
    with pytest.raises(ModelNotFound):
        catalog.resolve("escape")
    with pytest.raises(BadRequest):
        catalog.resolve("../secret")


def test_preset_aliases_and_default(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('default_model = "f"\n[models.f]\nbackend = "fake"\naliases = ["gpt-4o"]\n')
    catalog = Catalog(load_settings(config, data_dir=tmp_path, demo_model=False))
    assert catalog.resolve(None).id == "f"
    assert catalog.resolve("default").id == "f"
    assert catalog.resolve("gpt-4o").id == "f"


def test_preset_relative_path_may_not_leave_models_dir(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[models.bad]\npath = "../../etc/x.gguf"\n')
    catalog = Catalog(load_settings(config, data_dir=tmp_path, demo_model=False))
    with pytest.raises(ValueError, match="leaves the models directory"):
        catalog.entries()


def test_footprint_is_sized_from_the_gguf_header(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    tiny = write_tiny_gguf(models / "tiny.gguf")
    (models / "junk.gguf").write_bytes(b"GGUF")
    settings = load_settings(
        None,
        data_dir=tmp_path / "data",
        models_dir=models,
        demo_model=False,
        n_ctx=1024,
        parallel=3,
        kv_park_bytes=5000,
    )
    catalog = Catalog(settings)
    n_vocab = len(build_vocab()[0])
    # 2 layers x 4 KV heads x (16 + 16) f16 widths = 512 bytes of KV cache per token, for a
    # whole context in each of the 3 slots, plus the bytes parked KV may take
    expected = tiny.stat().st_size + 3 * 1024 * 512 + n_vocab * BATCH_TOKENS * 4 + 5000
    assert catalog.footprint(catalog.resolve("tiny")) == expected
    # an unreadable header costs the fallback figure, and no error
    fallback = 3 * 1024 * FALLBACK_KV_BYTES_PER_TOKEN + 5000
    assert catalog.footprint(catalog.resolve("junk")) == 4 + fallback
    # a replaced file is read again once the shelf is rescanned
    tiny.write_bytes(b"GGUF nope")
    catalog.refresh()
    assert catalog.footprint(catalog.resolve("tiny")) == 9 + fallback


@pytest.mark.skipif(not have_demo(), reason="the demo extra is not installed")
def test_demo_footprint_is_known_before_it_is_assembled(tmp_path: Path) -> None:
    settings = load_settings(
        None, data_dir=tmp_path, models_dir=tmp_path / "m", n_ctx=4096, parallel=1, kv_park_bytes=0
    )
    catalog = Catalog(settings)
    demo = catalog.resolve("default")
    assert demo.source == "demo"
    assert demo.path is None
    # Qwen2.5-0.5B: 24 layers x 2 KV heads x (64 + 64) f16 = 12 KiB a token; 151,936 tokens
    assert catalog.footprint(demo) == DEMO_SIZE + 4096 * 12288 + 151936 * BATCH_TOKENS * 4


def test_the_shelf_is_cached_between_scans(tmp_path: Path) -> None:
    """No disk walk per request: a file copied in by hand shows after the rescan interval or a
    refresh (Corral's own downloads and deletes refresh at once)."""
    models = tmp_path / "models"
    models.mkdir()
    write_tiny_gguf(models / "one.gguf")
    settings = load_settings(
        None, data_dir=tmp_path / "data", models_dir=models, demo_model=False, speech_models=False
    )
    catalog = Catalog(settings)
    catalog.rescan_interval = 3600.0
    assert set(catalog.entries()) == {"one"}
    write_tiny_gguf(models / "two.gguf")
    assert set(catalog.entries()) == {"one"}  # served from the cache
    catalog.refresh()
    assert set(catalog.entries()) == {"one", "two"}
    catalog.rescan_interval = 0.0
    (models / "one.gguf").unlink()
    assert set(catalog.entries()) == {"two"}  # the interval passed: scanned again
