"""Token attributions for text classifiers: a tokenizer read as data, texts as inputs, IG on the embeddings."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
captum_attr = pytest.importorskip("captum.attr")

from introspect import text as text_module  # noqa: E402
from introspect.analyzers.attribution_tokens import token_attributions  # noqa: E402
from introspect.api import analyze  # noqa: E402
from introspect.cli import main  # noqa: E402
from introspect.dataset.base import DataError  # noqa: E402
from introspect.errors import SkipAnalyzer  # noqa: E402
from introspect.inputs import with_inputs  # noqa: E402
from introspect.loading import load_checkpoint  # noqa: E402
from introspect.subject import Subject, Task  # noqa: E402

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
WORDS = ["the", "film", "was", "good", "bad", "very", "not", "<script>", "a", "plot"]
VOCABULARY_SIZE = 50
#: Every token the tokenizer knows, by id: the special ones, the words, then fillers up to the vocabulary size.
VOCABULARY = SPECIAL + WORDS + [f"w{index}" for index in range(VOCABULARY_SIZE - len(SPECIAL) - len(WORDS))]
IDS = {token: index for index, token in enumerate(VOCABULARY)}
TEXTS = ["the film was very good", "a bad plot <script>", "not good"]
N_STEPS = 32


def exit_code_of(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        main(args)
    captured = capsys.readouterr()
    return caught.value.code, captured.out, captured.err


def word_level_tokenizer() -> tokenizers.Tokenizer:
    """Whitespace-split words, [CLS] text [SEP], unknown words as [UNK]: as simple as a tokenizer gets."""
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel(IDS, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    tokenizer.add_special_tokens(SPECIAL)
    tokenizer.post_processor = tokenizers.processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", IDS["[CLS]"]), ("[SEP]", IDS["[SEP]"])]
    )
    return tokenizer


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT sentiment classifier as save_pretrained writes it, with a tokenizer.json beside it."""
    folder = tmp_path_factory.mktemp("hf") / "tiny-bert"
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=VOCABULARY_SIZE, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=32, num_labels=2, initializer_range=0.5, id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )  # fmt: skip
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    word_level_tokenizer().save(str(folder / "tokenizer.json"))
    return folder


@pytest.fixture(scope="module")
def texts_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("texts") / "texts.txt"
    path.write_text("\n".join(TEXTS[:2]) + "\n\n" + TEXTS[2] + "\n", encoding="utf-8")
    return path


@pytest.fixture()
def folder_without_tokenizer(bert_folder: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "no-tokenizer"
    shutil.copytree(bert_folder, folder)
    (folder / "tokenizer.json").unlink()
    return folder


def reference_model(folder: Path) -> torch.nn.Module:
    return transformers.BertForSequenceClassification.from_pretrained(folder).eval()


def expected_ids(text: str, length: int) -> list[int]:
    ids = [IDS["[CLS]"], *(IDS[word] for word in text.split()), IDS["[SEP]"]]
    return ids + [IDS["[PAD]"]] * (length - len(ids))


def test_texts_become_padded_token_ids_with_the_padding_masked(bert_folder: Path, texts_file: Path) -> None:
    subject = with_inputs(load_checkpoint(bert_folder, device="cpu"), [texts_file], max_inputs=16)
    length = 32  # the model's positions: fewer than TEXT_SEQUENCE_LENGTH
    assert subject.probe_inputs.tolist() == [expected_ids(text, length) for text in TEXTS]
    assert subject.task.input_shape == (length,) and subject.metadata["text_pad_id"] == IDS["[PAD]"]
    reference = reference_model(bert_folder)
    mask = (subject.probe_inputs != IDS["[PAD]"]).long()
    with torch.no_grad():
        expected = reference(subject.probe_inputs, attention_mask=mask).logits
        unmasked = reference(subject.probe_inputs).logits
        got = subject.model(subject.probe_inputs)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(got, unmasked, atol=1e-4)  # the mask matters: the padding is really left out
    # The subject still pickles (Ray ships it), the padding mask with it.
    restored = pickle.loads(pickle.dumps(subject))
    with torch.no_grad():
        torch.testing.assert_close(restored.model(subject.probe_inputs), expected, rtol=1e-5, atol=1e-6)


def test_attributions_equal_captums_layer_integrated_gradients(bert_folder: Path, texts_file: Path) -> None:
    subject = with_inputs(load_checkpoint(bert_folder, device="cpu"), [texts_file], max_inputs=16)
    (artifact,) = token_attributions(subject, n_steps=N_STEPS)
    ids = torch.as_tensor(artifact.data["token_ids"])
    reference = reference_model(bert_folder)
    kept = (ids == IDS["[CLS]"]) | (ids == IDS["[SEP]"])
    baseline = torch.where(kept, ids, torch.full_like(ids, IDS["[PAD]"]))
    mask = (ids != IDS["[PAD]"]).long()
    with torch.no_grad():
        targets = reference(ids, attention_mask=mask).logits.argmax(dim=1)
    method = captum_attr.LayerIntegratedGradients(
        lambda x, m: reference(x, attention_mask=m).logits, reference.bert.embeddings.word_embeddings
    )
    expected, delta = method.attribute(
        ids, baselines=baseline, target=targets, additional_forward_args=(mask,), n_steps=N_STEPS,
        return_convergence_delta=True,
    )  # fmt: skip
    np.testing.assert_array_equal(artifact.data["baseline_ids"], baseline.numpy())
    np.testing.assert_array_equal(artifact.data["targets"], targets.numpy())
    np.testing.assert_allclose(
        artifact.data["attributions"], expected.sum(dim=-1).double().numpy(), rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(artifact.data["delta"], delta.double().numpy(), rtol=1e-4, atol=1e-7)
    # Completeness: the tokens sum to f(text) - f(baseline), off by the convergence delta the summary reports.
    with torch.no_grad():
        gain = reference(ids, attention_mask=mask).logits - reference(baseline, attention_mask=mask).logits
    gain = gain.gather(1, targets[:, None])[:, 0].double().numpy()
    gap = np.abs(artifact.data["attributions"].sum(axis=1) - gain)
    assert np.all(gap <= artifact.summary["max_abs_delta"] + 1e-6)
    assert artifact.summary["max_abs_delta"] == pytest.approx(delta.abs().max().item(), rel=1e-4, abs=1e-7)
    # The view shows each text's own tokens (no padding), and their attributions.
    rows = artifact.interactive["rows"]
    assert [row["tokens"] for row in rows] == [["[CLS]", *TEXTS[i].split(), "[SEP]"] for i in artifact.data["indices"]]
    first = int(mask[0].sum())
    np.testing.assert_allclose(rows[0]["scores"], artifact.data["attributions"][0][:first], rtol=1e-5)


def test_the_cli_explains_texts_and_the_page_shows_escaped_tokens(
    bert_folder: Path, texts_file: Path, tmp_path: Path, capsys
) -> None:
    out_dir = tmp_path / "gallery"
    args = ["analyze", str(bert_folder), "--inputs", str(texts_file), "-a", "token_attributions", "-o", str(out_dir)]
    code, _, err = exit_code_of([*args, "--device", "cpu"], capsys)
    assert code == 0, err
    manifest = json.loads((out_dir / "manifest.json").read_text())
    (result,) = [entry for entry in manifest["analyzers"] if entry["name"] == "token_attributions"]
    assert result["status"] == "ok"
    rows = result["figures"][0]["interactive"]["rows"]
    assert sorted(" ".join(row["tokens"][1:-1]) for row in rows) == sorted(TEXTS)
    assert result["figures"][0]["file"].endswith(".png")
    page = (out_dir / "index.html").read_text()
    assert page.count('<span class="token"') == sum(len(row["tokens"]) for row in rows)
    assert ">&lt;script&gt;</span>" in page and "><script></span>" not in page
    assert 'title="' + f"{rows[0]['scores'][1]:.4g}" + '"' in page


def test_a_notebook_shows_the_tokens_as_html(bert_folder: Path, texts_file: Path) -> None:
    report = analyze(bert_folder, analyzers=["token_attributions"], input_files=[texts_file], device="cpu")
    html = report.to_html()
    tokens = sum(len(row["tokens"]) for row in report.results[0].artifacts[0].interactive["rows"])
    assert html.count('<span class="token"') == tokens and "&lt;script&gt;" in html


def test_without_a_tokenizer_the_random_probe_is_shown_as_ids(folder_without_tokenizer: Path) -> None:
    subject = load_checkpoint(folder_without_tokenizer, device="cpu")
    (artifact,) = token_attributions(subject, n_steps=8, max_inputs=2)
    ids = artifact.data["token_ids"]
    assert artifact.interactive["rows"][0]["tokens"] == [f"[{index}]" for index in ids[0]]
    assert "Tokens are shown as their ids" in artifact.caption and artifact.summary["tokenizer"] is False
    # No special tokens are known, so the whole baseline is padding (BERT's pad_token_id, 0).
    assert (artifact.data["baseline_ids"] == 0).all()


def test_a_text_file_without_a_tokenizer_is_one_line_and_exit_2(
    folder_without_tokenizer: Path, texts_file: Path, tmp_path: Path, capsys
) -> None:
    args = ["analyze", str(folder_without_tokenizer), "--inputs", str(texts_file), "-a", "token_attributions"]
    code, _, err = exit_code_of([*args, "-o", str(tmp_path / "out"), "--device", "cpu"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "needs a tokenizer" in err


def test_a_too_large_tokenizer_is_one_line_and_exit_2(
    bert_folder: Path, texts_file: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    size = (bert_folder / "tokenizer.json").stat().st_size
    monkeypatch.setattr(text_module, "MAX_TOKENIZER_BYTES", size - 1)
    args = ["analyze", str(bert_folder), "--inputs", str(texts_file), "-a", "token_attributions"]
    code, _, err = exit_code_of([*args, "-o", str(tmp_path / "out"), "--device", "cpu"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{size:,} bytes, more than the {size - 1:,}" in err


def test_a_broken_tokenizer_or_texts_file_is_one_sentence(folder_without_tokenizer: Path, tmp_path: Path) -> None:
    (folder_without_tokenizer / "tokenizer.json").write_text("{not json")
    subject = load_checkpoint(folder_without_tokenizer, device="cpu")
    with pytest.raises(Exception, match="not a tokenizer file the tokenizers library can read"):
        text_module.subject_tokenizer(subject)
    long_line = tmp_path / "long.txt"
    long_line.write_text("ok\n" + "x" * (text_module.MAX_LINE_CHARACTERS + 1) + "\n")
    with pytest.raises(DataError, match="line 2 has"):
        text_module.read_texts(long_line)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        text_module.read_texts(latin)


def test_a_wordpiece_vocab_file_is_a_tokenizer_too(tmp_path: Path) -> None:
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join([*SPECIAL, "the", "film", "good", "##s"]) + "\n")
    subject = Subject(weights={}, metadata={"tokenizer_file": str(vocab)})
    tokenizer = text_module.subject_tokenizer(subject)
    # Lower-cased, split into word pieces, [CLS] ... [SEP] as BERT's own tokenizer does.
    assert tokenizer.encode("The films GOOD").ids == [2, 4, 5, 7, 6, 3]
    assert text_module.special_ids(tokenizer) == {0, 1, 2, 3}


def test_image_models_are_skipped_with_a_reason() -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    task = Task(kind="classification", input_shape=(3, 2, 2), image_shape=(3, 2, 2), class_names=("a", "b", "c"))
    subject = Subject.from_model(model, torch.randn(4, 3, 2, 2), task=task)
    with pytest.raises(SkipAnalyzer, match="not token ids"):
        token_attributions(subject)


def embedding_classifier_subject() -> Subject:
    """A text classifier that is no transformers model: token embeddings, flattened, one linear layer."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(20, 4), torch.nn.Flatten(), torch.nn.Linear(5 * 4, 3)).eval()
    ids = torch.randint(0, 20, (6, 5), generator=torch.Generator().manual_seed(1))
    task = Task(kind="classification", input_shape=(5,), class_names=("a", "b", "c"))
    return Subject.from_model(model, ids, task=task)


def test_any_embedding_model_is_explained_and_conforms() -> None:
    from introspect.spec import spec_of
    from introspect.testing import check_analyzer

    subject = embedding_classifier_subject()
    (artifact,) = token_attributions(subject, n_steps=16, max_inputs=3)
    ids = torch.as_tensor(artifact.data["token_ids"])
    targets = torch.as_tensor(artifact.data["targets"])
    expected = captum_attr.LayerIntegratedGradients(subject.model, subject.model[0]).attribute(
        ids, baselines=torch.zeros_like(ids), target=targets, n_steps=16
    )
    per_token = expected.sum(dim=-1).double().numpy()
    np.testing.assert_allclose(artifact.data["attributions"], per_token, rtol=1e-5, atol=1e-7)
    # A linear model is its own straight path: IG is exact, the tokens sum to the score difference.
    assert artifact.summary["max_abs_delta"] < 1e-4
    assert check_analyzer(spec_of(token_attributions), {"text": subject}) == {"text": "ok"}
