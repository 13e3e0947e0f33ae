"""Character-level tokenizer for ABC: one token per character of printable ASCII or newline.

ABC's music is ASCII; only titles and voice names may hold other letters (`T:Rêve`,
`V:2 name="Flûte"`), and the model reads those folded to ASCII (`fold`). One token per
character keeps the bar-exact decoder simple and exact (every token is one character of the
grammar it checks); the measurements behind this choice are in docs/research/models.md
("Choosing the tokenizer").
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

from engine.errors import SegueError

ALPHABET = "\n" + "".join(chr(c) for c in range(32, 127))
TOKENIZER_FILE = "tokenizer.json"
TYPOGRAPHIC = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": "", "\u201d": ""})


def fold(text: str) -> str:
    """`text` with letters outside ASCII folded to their base letters (é -> e, Å -> A),
    curly apostrophes made straight, and what has no ASCII form (curly quotes, ♭) dropped."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text.translate(TYPOGRAPHIC))
    return "".join(ch for ch in decomposed if ch.isascii())


class CharTokenizer:
    """Maps each character of `alphabet` to its index."""

    kind = "char"

    def __init__(self, alphabet: str = ALPHABET) -> None:
        self.alphabet = alphabet
        self.index = {ch: i for i, ch in enumerate(alphabet)}

    @property
    def vocab_size(self) -> int:
        return len(self.alphabet)

    @property
    def token_text(self) -> list[str]:
        """The text of each token id, for decoders that check tokens against a grammar."""
        return list(self.alphabet)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (folded to ASCII); SegueError names the first character
        outside the alphabet (a control character such as a tab)."""
        try:
            return [self.index[ch] for ch in fold(text)]
        except KeyError as error:
            raise SegueError(f"character {error.args[0]!r} cannot be given to the model "
                             "(ABC for the model is printable ASCII and newlines)") from None

    def decode(self, ids: list[int]) -> str:
        return "".join(self.alphabet[i] for i in ids)

    def save(self, folder: str | Path) -> None:
        path = Path(folder) / TOKENIZER_FILE
        path.write_text(json.dumps({"kind": self.kind, "alphabet": self.alphabet}), "utf-8")

    @classmethod
    def load(cls, folder: str | Path) -> CharTokenizer:
        data = json.loads((Path(folder) / TOKENIZER_FILE).read_text("utf-8"))
        if data.get("kind") != cls.kind:
            raise SegueError(f"{folder}: tokenizer kind {data.get('kind')!r} is not supported")
        return cls(data["alphabet"])
