"""Segue's engine: ABC text, music21 conversion, the models and what they write.

The engine knows nothing of hosts; `bridge` carries its music to MuseScore, MIDI and OSC.
"""

__version__ = "0.1.0"
