"""Generate the bundled sample chat data: `raytune_chat/_sample_data/sample_chat.json`.

The file has the torchtune chat tutorial's ShareGPT layout (a JSON array of objects whose
`dialogue` column holds `{"from": "human" | "gpt" | "system", "value": ...}` turns). The
conversations are deterministic templated question/answer pairs (arithmetic, capitals,
opposites, counting, colours, greetings), so a tiny model can learn them and its loss falls
well below half of its starting value within a few hundred steps.

Run (seeded, byte-for-byte reproducible)::

    python benchmarks/make_sample_chat.py            # writes the bundled file
    python benchmarks/make_sample_chat.py --num 100000 --out /tmp/chat.json   # benchmarks
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from pathlib import Path

DEFAULT_OUT = (
    Path(__file__).resolve().parent.parent / "raytune_chat" / "_sample_data" / "sample_chat.json"
)

CAPITALS = {
    "France": "Paris",
    "Germany": "Berlin",
    "Italy": "Rome",
    "Spain": "Madrid",
    "Japan": "Tokyo",
    "Canada": "Ottawa",
    "Egypt": "Cairo",
    "Kenya": "Nairobi",
    "Peru": "Lima",
    "Norway": "Oslo",
    "Greece": "Athens",
    "Poland": "Warsaw",
    "Portugal": "Lisbon",
    "Ireland": "Dublin",
    "Austria": "Vienna",
    "Chile": "Santiago",
}
OPPOSITES = {
    "hot": "cold",
    "big": "small",
    "fast": "slow",
    "up": "down",
    "light": "dark",
    "happy": "sad",
    "early": "late",
    "open": "closed",
    "full": "empty",
    "old": "new",
    "strong": "weak",
    "high": "low",
    "wet": "dry",
    "loud": "quiet",
    "hard": "soft",
}
COLOURS = {
    "the sky": "blue",
    "grass": "green",
    "snow": "white",
    "coal": "black",
    "a banana": "yellow",
    "a tomato": "red",
    "an orange": "orange",
    "a lemon": "yellow",
    "a carrot": "orange",
    "a plum": "purple",
    "chocolate": "brown",
    "the sea": "blue",
    "a cherry": "red",
}
SYSTEM_PROMPTS = [
    "You are a helpful assistant.",
    "You are a concise assistant. Answer in one sentence.",
]
GREETINGS = [
    ("Hello!", "Hello! How can I help you today?"),
    ("Hi there.", "Hi! What would you like to know?"),
    ("What is your name?", "I am an AI assistant, I don't have a name."),
    ("Thank you!", "You are welcome. Is there anything else I can help with?"),
]


def _addition(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(0, 50), rng.randint(0, 50)
    return f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}."


def _capital(rng: random.Random) -> tuple[str, str]:
    country = rng.choice(sorted(CAPITALS))
    return f"What is the capital of {country}?", f"The capital of {country} is {CAPITALS[country]}."


def _opposite(rng: random.Random) -> tuple[str, str]:
    word = rng.choice(sorted(OPPOSITES))
    return f"What is the opposite of {word}?", f"The opposite of {word} is {OPPOSITES[word]}."


def _counting(rng: random.Random) -> tuple[str, str]:
    start = rng.randint(1, 20)
    stop = start + rng.randint(2, 6)
    numbers = ", ".join(str(n) for n in range(start, stop + 1))
    return f"Count from {start} to {stop}.", f"Here you go: {numbers}."


def _colour(rng: random.Random) -> tuple[str, str]:
    thing = rng.choice(sorted(COLOURS))
    return f"What colour is {thing}?", f"{thing[0].upper() + thing[1:]} is {COLOURS[thing]}."


def _greeting(rng: random.Random) -> tuple[str, str]:
    return rng.choice(GREETINGS)


TASKS: list[Callable[[random.Random], tuple[str, str]]] = [
    _addition,
    _capital,
    _opposite,
    _counting,
    _colour,
    _greeting,
]


def make_conversation(rng: random.Random) -> dict:
    """One conversation: an optional system turn, then 1-4 human/gpt exchanges."""
    turns: list[dict[str, str]] = []
    if rng.random() < 0.3:
        turns.append({"from": "system", "value": rng.choice(SYSTEM_PROMPTS)})
    for _ in range(rng.randint(1, 4)):
        question, answer = rng.choice(TASKS)(rng)
        turns.append({"from": "human", "value": question})
        turns.append({"from": "gpt", "value": answer})
    return {"dialogue": turns}


def write_sample(out: Path, *, num: int, seed: int, jsonl: bool = False) -> None:
    """Write `num` conversations as a JSON array (or JSONL), deterministically from `seed`."""
    rng = random.Random(seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        if not jsonl:
            f.write("[\n")
        for i in range(num):
            line = json.dumps(make_conversation(rng), ensure_ascii=False)
            if jsonl:
                f.write(line + "\n")
            else:
                f.write(line + (",\n" if i < num - 1 else "\n"))
        if not jsonl:
            f.write("]\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--num", type=int, default=800)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jsonl", action="store_true", help="write JSON Lines, not an array")
    args = parser.parse_args()
    write_sample(args.out, num=args.num, seed=args.seed, jsonl=args.jsonl)


if __name__ == "__main__":
    main()
