"""The SentencePiece base tokenizer: whitespace detection, continuation encoding, pickling."""

from __future__ import annotations

import pickle

import pytest
import sentencepiece as spm

from raytune_chat.modules.tokenizers import BaseTokenizer, SentencePieceBaseTokenizer
from tests.modules.tokenizers.spm_reference import train_meta_like_sentencepiece


@pytest.fixture(scope="module")
def meta_path(tmp_path_factory):
    return str(train_meta_like_sentencepiece(tmp_path_factory.mktemp("meta")))


def test_ids_and_protocol(spm_path):
    sp = SentencePieceBaseTokenizer(str(spm_path))
    assert isinstance(sp, BaseTokenizer)
    assert (sp.bos_id, sp.eos_id, sp.vocab_size) == (1, 2, 400)
    assert sp.encode("hello", add_bos=True, add_eos=True)[0] == 1
    assert sp.encode("hello")[-1] == 2


def test_whitespace_detection(spm_path, meta_path):
    assert SentencePieceBaseTokenizer(str(spm_path)).encodes_whitespace is False
    assert SentencePieceBaseTokenizer(meta_path).encodes_whitespace is True


def test_continuation_drops_the_prefix_tokens(meta_path):
    raw = spm.SentencePieceProcessor(model_file=meta_path)
    sp = SentencePieceBaseTokenizer(meta_path)
    newline = raw.encode("\n")
    expected = raw.encode("\nthe data")[len(newline) :]
    got = sp.encode("the data", add_bos=False, add_eos=False, trim_leading_whitespace=True)
    assert got == expected and got != raw.encode("the data")
    assert not raw.id_to_piece(got[0]).startswith("▁")
    assert raw.id_to_piece(raw.encode("the data")[0]).startswith("▁")


def test_continuation_is_a_no_op_without_whitespace_pieces(spm_path):
    raw = spm.SentencePieceProcessor(model_file=str(spm_path))
    sp = SentencePieceBaseTokenizer(str(spm_path))
    got = sp.encode("the data", add_bos=False, add_eos=False, trim_leading_whitespace=True)
    assert got == raw.encode("the data")


def test_special_strings_are_text(spm_path):
    sp = SentencePieceBaseTokenizer(str(spm_path))
    ids = sp.encode("<s></s>", add_bos=False, add_eos=False)
    assert 1 not in ids and 2 not in ids and sp.decode(ids) == "<s></s>"


def test_pickle_without_the_file(tmp_path, meta_path):
    path = tmp_path / "m.model"
    path.write_bytes(open(meta_path, "rb").read())
    sp = SentencePieceBaseTokenizer(str(path))
    blob = pickle.dumps(sp)
    path.unlink()
    clone = pickle.loads(blob)
    assert clone.spm_model is sp.spm_model  # cached processor reused in this process
    assert clone.encode("the data", trim_leading_whitespace=True) == sp.encode(
        "the data", trim_leading_whitespace=True
    )
