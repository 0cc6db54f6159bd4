"""Tests of the real Azure CLI against the emulator: every printed ``az`` command, the private CLI config."""
