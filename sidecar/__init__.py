"""The live capture agent: kernel-filtered capture, learning window, checkpoints, HTTP."""
