"""Call and response over MIDI ports: capture a phrase, answer it in time, SysEx messages."""
