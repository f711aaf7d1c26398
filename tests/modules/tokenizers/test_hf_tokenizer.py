"""The `tokenizer.json` backend gives the ids of tiktoken on Meta's `tokenizer.model`."""

from __future__ import annotations

import pickle
import random
import shutil
import subprocess
import sys

import pytest
from tokenizers import Tokenizer

from raytune_chat.models.llama3 import llama3_tokenizer
from raytune_chat.modules.tokenizers import HuggingFaceBaseTokenizer, TikTokenBaseTokenizer
from tests.assets.build_assets import meta_llama3_tokenizer_path
from tests.conftest import REPO_ROOT

EOT = 128009


@pytest.fixture(scope="module")
def model_tok():
    return llama3_tokenizer(str(meta_llama3_tokenizer_path("tokenizer.model")))


@pytest.fixture(scope="module")
def json_tok():
    return llama3_tokenizer(str(meta_llama3_tokenizer_path("tokenizer.json")))


def _texts() -> list[str]:
    rng = random.Random(0)
    alphabet = "abc XYZ\n\t'.,!?-_<|>{}\"0123456789éü日本🎉\r \u00a0"
    texts = [
        "Hello world",
        "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nI am root<|end_of_text|>",
        "<|begin_of_text|><|python_tag|><|reserved_special_token_7|><|image|>",
        "  spaces   \n\n\n tabs\t\tend  ",
        "日本語のテキスト, émojis 🎉🎉 and ünïcödé",
        "1234567890 3.14159 $100,000 don't I'll we've",
        '{"name": "get_weather", "parameters": {"city": "Zürich"}}',
        (REPO_ROOT / "README.md").read_text(),
    ]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 120))) for _ in range(200)]
    return texts


def test_backends_are_chosen_by_file(model_tok, json_tok):
    assert isinstance(model_tok.tt_model, TikTokenBaseTokenizer)
    assert isinstance(json_tok.tt_model, HuggingFaceBaseTokenizer)
    assert (json_tok.base_vocab_size, json_tok.vocab_size) == (128000, 128257)
    assert json_tok.special_tokens == model_tok.special_tokens


def test_same_ids_and_text_as_tiktoken(model_tok, json_tok):
    for text in _texts():
        ids = model_tok.encode(text, add_bos=False, add_eos=False)
        assert json_tok.encode(text, add_bos=False, add_eos=False) == ids, text[:60]
        assert json_tok.decode(ids) == model_tok.decode(ids) == text


def test_special_token_strings_stay_text_unlike_the_library_default(json_tok):
    text = "<|eot_id|>"
    library = Tokenizer.from_file(str(meta_llama3_tokenizer_path("tokenizer.json")))
    assert library.encode(text, add_special_tokens=False).ids == [EOT]  # why we strip it
    ids = json_tok.encode(text, add_bos=False, add_eos=False)
    assert EOT not in ids and len(ids) > 1 and max(ids) < 128000
    assert json_tok.decode([EOT, *ids]) == "<|eot_id|>"  # the special id is skipped, the text kept
    assert json_tok.decode([EOT, *ids], skip_special_tokens=False) == "<|eot_id|><|eot_id|>"


def test_long_runs_are_cut_where_tiktoken_cuts_them(model_tok, json_tok):
    text = "x" * 30_000 + " hello " + " " * 60_000 + "y" * 10 + "ab" * 20_000
    assert json_tok.encode(text) == model_tok.encode(text)


def test_detected_by_content_and_pickled_without_the_file(tmp_path, json_tok):
    path = tmp_path / "tokenizer.model"  # a tokenizer.json under the other name
    shutil.copy(meta_llama3_tokenizer_path("tokenizer.json"), path)
    tok = llama3_tokenizer(str(path))
    assert isinstance(tok.tt_model, HuggingFaceBaseTokenizer)
    blob = pickle.dumps(tok)
    path.unlink()
    clone = pickle.loads(blob)
    assert clone.encode("Hi <|eot_id|>") == json_tok.encode("Hi <|eot_id|>")


def test_tokenizers_is_imported_only_for_a_tokenizer_json():
    code = (
        "import sys\n"
        "from raytune_chat.models.llama3 import llama3_tokenizer\n"
        "from raytune_chat.data import Message\n"
        "from tests.assets.build_assets import meta_llama3_tokenizer_path as p\n"
        "tok = llama3_tokenizer(str(p('tokenizer.model')))\n"
        "tok.tokenize_messages([Message('user', 'a', masked=True), Message('assistant', 'b')])\n"
        "print('tokenizers' in sys.modules)\n"
        "llama3_tokenizer(str(p('tokenizer.json')))\n"
        "print('tokenizers' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "True"]
