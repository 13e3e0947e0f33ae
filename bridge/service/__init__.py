"""The engine as a service: worker processes with time limits, and the HTTP and OSC servers."""
