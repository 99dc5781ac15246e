"""The tts child: Piper (ONNX) on one voice, audio encoded with PyAV."""
