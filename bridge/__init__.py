"""Segue's bridge: transports between the engine and the hosts (HTTP, OSC, MIDI)."""
