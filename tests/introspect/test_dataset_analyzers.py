"""The dataset analyzers over the offline MNIST test split, each checked against a direct computation.

The direct computations run the model over the whole split at once and read layers with plain
forward hooks, then use numpy, sklearn and captum; none of introspect's dataset code is involved.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from introspect.api import analyze
from introspect.dataset.plan import DatasetPlan
from introspect.dataset.sources import DataError, from_iterable, open_source, open_torchvision
from introspect.subject import Subject, Task

DATA = Path(os.environ["INTROSPECT_DATA"])
LIMIT = 600
DATASET_ANALYZERS = [
    "dataset_confusion",
    "dataset_health",
    "top_activations",
    "embedding_projection",
    "linear_probes",
    "class_saliency",
]
NORMALIZATION = {"mean": [0.1307], "std": [0.3081]}


def mnist_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(4),
        torch.nn.Flatten(),
        torch.nn.Linear(6 * 6 * 6, 16),
        torch.nn.ReLU(),
        torch.nn.Linear(16, 10),
    )


@pytest.fixture(scope="module")
def mnist_subject() -> Subject:
    model = mnist_cnn().eval()
    source = open_torchvision("mnist", DATA)
    task = Task(
        kind="classification",
        input_shape=(1, 28, 28),
        image_shape=(1, 28, 28),
        class_names=tuple(source.class_names),
        normalization=NORMALIZATION,
    )
    probe = (source.dataset.data[:8].float() / 255).unsqueeze(1)
    subject = Subject.from_model(model, (probe - 0.1307) / 0.3081, source.dataset.targets[:8], task=task)
    return dataclasses.replace(subject, data=DatasetPlan(source, limit=LIMIT, batch_size=128))


@pytest.fixture(scope="module")
def whole_split(mnist_subject: Subject) -> dict[str, np.ndarray]:
    """Inputs, labels, logits and every layer's output for the first LIMIT inputs, in one direct pass."""
    dataset = mnist_subject.data.source.dataset
    inputs = (dataset.data[:LIMIT].float().unsqueeze(1) / 255 - 0.1307) / 0.3081
    labels = dataset.targets[:LIMIT].numpy()
    outputs = {}
    handles = [
        module.register_forward_hook(lambda m, i, o, name=name: outputs.__setitem__(name, o.detach().clone()))
        for name, module in mnist_subject.model.named_children()
    ]
    with torch.no_grad():
        logits = mnist_subject.model(inputs)
    for handle in handles:
        handle.remove()
    return {"inputs": inputs, "labels": labels, "logits": logits, **outputs}


@pytest.fixture(scope="module")
def report(mnist_subject: Subject):  # noqa: ANN201
    forwards = []
    handle = mnist_subject.model.register_forward_pre_hook(lambda module, args: forwards.append(len(args[0])))
    try:
        result = analyze(mnist_subject, analyzers=DATASET_ANALYZERS[:-1])
    finally:
        handle.remove()
    return result, forwards


def artifact(report, analyzer: str, index: int = 0):  # noqa: ANN001, ANN201
    return report[0].result(analyzer).artifacts[index]


def test_every_dataset_analyzer_runs_off_one_shared_pass(report) -> None:  # noqa: ANN001
    result, forwards = report
    assert [item.status for item in result.results] == ["ok"] * 5, [item.reason for item in result.results]
    # one forward per batch of 128 for all five; besides, only one probe input (the output width) and
    # dataset_confusion's re-run of the few mistakes it shows
    batches = [size for size in forwards if size in (128, 88)]
    assert batches == [128, 128, 128, 128, 88] and len(forwards) == 7, forwards


def test_confusion_and_precision_recall_equal_sklearn(report, whole_split) -> None:  # noqa: ANN001
    predicted = whole_split["logits"].argmax(dim=1).numpy()
    expected = confusion_matrix(whole_split["labels"], predicted, labels=range(10))
    confusion = artifact(report, "dataset_confusion")
    np.testing.assert_array_equal(confusion.data["counts"], expected)
    precision, recall, _, _ = precision_recall_fscore_support(
        whole_split["labels"], predicted, labels=range(10), zero_division=np.nan
    )
    np.testing.assert_allclose(confusion.data["precision"], precision, equal_nan=True)
    np.testing.assert_allclose(confusion.data["recall"], recall, equal_nan=True)
    assert confusion.summary["accuracy"] == pytest.approx((predicted == whole_split["labels"]).mean())


def test_top_activations_equal_numpy_top_k_over_the_split(report, whole_split) -> None:  # noqa: ANN001
    relu = whole_split["1"].double().mean(dim=(2, 3)).numpy()  # conv channels by their mean over positions
    top = next(a for a in report[0].result("top_activations").artifacts if a.layer == "1")
    for unit in range(6):
        expected = np.lexsort((np.arange(LIMIT), -relu[:, unit]))[:8]  # largest first, ties to the lower index
        np.testing.assert_array_equal(top.data["top_indices"][unit], expected)
        np.testing.assert_allclose(top.data["top_values"][unit], relu[expected, unit], rtol=1e-12)
    np.testing.assert_allclose(top.data["mean"], relu.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(top.data["active_fraction"], (relu > 0).mean(axis=0))


def test_dead_units_are_those_never_active_on_the_split(report, whole_split) -> None:  # noqa: ANN001
    health = artifact(report, "dataset_health")
    for name in ("1", "5"):
        values = whole_split[name].double()
        means = values.mean(dim=(2, 3)) if values.dim() == 4 else values
        np.testing.assert_array_equal(health.data["dead"][name], np.flatnonzero((means > 0).sum(dim=0).numpy() == 0))
        np.testing.assert_allclose(health.data["active_fraction"][name], (means > 0).double().mean(dim=0).numpy())


def test_projection_equals_sklearn_pca_on_the_same_sample(report, whole_split) -> None:  # noqa: ANN001
    embedding = artifact(report, "embedding_projection")
    assert embedding.layer == "5"  # the layer before the output layer
    indices = embedding.data["indices"]
    assert len(indices) == LIMIT and list(indices) == sorted(indices)
    features = whole_split["5"].double().numpy()[indices]
    expected = PCA(n_components=2, random_state=0).fit_transform(features)
    np.testing.assert_allclose(np.abs(embedding.data["pca"]), np.abs(expected), atol=1e-8)  # a PCA axis has no sign
    assert np.isfinite(embedding.data["tsne"]).all() and embedding.data["tsne"].shape == (LIMIT, 2)


def test_linear_probes_equal_sklearn_on_the_same_features(report, whole_split) -> None:  # noqa: ANN001
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probes = artifact(report, "linear_probes")
    assert probes.data["layers"] == ["1", "5"]  # the ReLUs, in order
    train, test = probes.data["train_indices"], probes.data["test_indices"]
    features = whole_split["5"].double().numpy()
    labels = whole_split["labels"]
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(features[train], labels[train])
    assert probes.summary["accuracy"]["5"] == pytest.approx(probe.score(features[test], labels[test]))
    assert probes.data["chance"] == pytest.approx(np.bincount(labels[test]).max() / len(test))


def test_class_saliency_is_the_mean_of_captum_saliency_maps_per_class(mnist_subject, whole_split) -> None:  # noqa: ANN001
    from captum.attr import Saliency

    subject = dataclasses.replace(mnist_subject, data=DatasetPlan(mnist_subject.data.source, limit=200))
    result = analyze(subject, analyzers=["class_saliency"]).result("class_saliency")
    assert result.ok, result.reason
    inputs = whole_split["inputs"][:200].clone().requires_grad_(True)
    labels = torch.as_tensor(whole_split["labels"][:200])
    maps = Saliency(subject.model).attribute(inputs, target=labels, abs=True).amax(dim=1).double().numpy()
    maps = maps / maps.reshape(200, -1).max(axis=1).reshape(-1, 1, 1)
    means = result.artifacts[0].data["means"]
    for label in range(10):
        np.testing.assert_allclose(means[label], maps[labels.numpy() == label].mean(axis=0), rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(result.artifacts[0].data["counts"], np.bincount(labels.numpy(), minlength=10))


def test_without_data_the_dataset_analyzers_are_skipped_with_the_reason(mnist_subject) -> None:  # noqa: ANN001
    plain = dataclasses.replace(mnist_subject, data=None)
    result = analyze(plain, analyzers=["dataset_confusion"]).result("dataset_confusion")
    assert result.status == "skipped" and result.reason == "no dataset was given (pass --data SOURCE)"


def test_lenet5_checkpoint_gets_every_dataset_analyzer_from_the_cli(tmp_path: Path) -> None:
    def introspect(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-c", "from introspect.cli import main; main()", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=600)

    checkpoint = tmp_path / "lenet5.pt"
    trained = introspect(
        "train", "lenet5", "--quick", "--epochs", "1", "--out", str(checkpoint), "--data-dir", str(DATA)
    )
    assert trained.returncode == 0, trained.stderr
    out = tmp_path / "gallery"
    names = [item for name in DATASET_ANALYZERS for item in ("-a", name)]
    ran = introspect("analyze", str(checkpoint), *names, "--data", "mnist", "--data-dir", str(DATA), "--limit", "300",
                     "-o", str(out))  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert {entry["name"]: entry["status"] for entry in manifest["analyzers"]} == dict.fromkeys(DATASET_ANALYZERS, "ok")
    assert "Over 300 inputs of the test split of mnist" in manifest["analyzers"][0]["figures"][0]["caption"]


def test_a_bad_data_source_is_one_sentence_and_exit_2(tmp_path: Path, introspect_checkpoint: Path) -> None:
    command = [sys.executable, "-c", "from introspect.cli import main; main()", "analyze", str(introspect_checkpoint)]
    ran = subprocess.run([*command, "--all", "--data", "imagenet", "-o", str(tmp_path / "g")], capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert ran.returncode == 2 and not (tmp_path / "g").exists()
    assert ran.stderr.strip().startswith("introspect: error: unknown dataset 'imagenet'")
    assert len(ran.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_the_ray_executor_gives_the_local_numbers_on_a_local_cluster(
    mnist_subject, report, whole_split, tmp_path: Path
) -> None:  # noqa: ANN001
    import ray
    from captum.attr import Saliency

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = dataclasses.replace(mnist_subject, data=dataclasses.replace(mnist_subject.data, executor="ray"))
        result = analyze(on_ray, analyzers=DATASET_ANALYZERS)
        labels = np.full(50, 99)  # outside the 10 classes: the actor's DataError must reach the page as itself
        np.save(tmp_path / "inputs.npy", np.zeros((50, 28, 28), dtype=np.uint8))
        np.save(tmp_path / "labels.npy", labels)
        source = open_source(tmp_path / "inputs.npy", labels=tmp_path / "labels.npy")
        bad = dataclasses.replace(mnist_subject, data=DatasetPlan(source, executor="ray"))
        bad_result = analyze(bad, analyzers=["dataset_confusion"]).result("dataset_confusion")
    finally:
        ray.shutdown()
    assert [item.status for item in result.results] == ["ok"] * 6, [item.reason for item in result.results]
    assert "Ray (local cluster) executor" in result.result("dataset_confusion").artifacts[0].caption
    exact = {"dataset_confusion": ["counts"], "top_activations": ["top_indices"], "embedding_projection": ["indices"]}
    for name in DATASET_ANALYZERS[:-1]:
        local, remote = artifact(report, name).data, result.result(name).artifacts[0].data
        for key in exact.get(name, []):
            np.testing.assert_array_equal(remote[key], local[key])
        for key in ("precision", "recall", "top_values", "mean", "pca", "active_fraction"):
            if key in local and not isinstance(local[key], dict):
                np.testing.assert_allclose(remote[key], local[key], rtol=1e-9, equal_nan=True)
    # class saliency on Ray against captum over the same 600 inputs
    inputs = whole_split["inputs"].clone().requires_grad_(True)
    targets = torch.as_tensor(whole_split["labels"])
    maps = Saliency(mnist_subject.model).attribute(inputs, target=targets, abs=True).amax(dim=1).double().numpy()
    maps = maps / maps.reshape(LIMIT, -1).max(axis=1).reshape(-1, 1, 1)
    means = result.result("class_saliency").artifacts[0].data["means"]
    for label in range(10):
        np.testing.assert_allclose(means[label], maps[targets.numpy() == label].mean(axis=0), rtol=1e-6, atol=1e-9)
    assert bad_result.reason == "the dataset pass failed: the data has label 99, outside the model's 10 classes"


def test_the_ray_executor_without_ray_is_one_sentence(monkeypatch, mnist_subject) -> None:  # noqa: ANN001
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else find_spec(name, *a))
    with pytest.raises(
        DataError, match=r"^--executor ray needs Ray, which is not installed: pip install 'introspect\[ray\]'$"
    ):
        DatasetPlan(mnist_subject.data.source, executor="ray")
    with pytest.raises(DataError, match="a Python iterable runs on the local executor"):
        monkeypatch.undo()
        DatasetPlan(from_iterable(iter([torch.zeros(2, 1, 28, 28)])), executor="ray")


def test_an_interrupted_pass_resumes_from_its_record_with_the_same_numbers(
    monkeypatch, mnist_subject, report, tmp_path: Path
) -> None:  # noqa: ANN001
    from introspect.dataset import records

    monkeypatch.setattr(records, "RECORD_INTERVAL_S", 0.0)  # a record after every batch
    model, forwards = mnist_subject.model, []

    def interrupt_at_the_fourth_batch(module, args) -> None:  # noqa: ANN001
        forwards.append(len(args[0]))
        if len(forwards) == 5:  # the output-width check, then three batches of 128: Ctrl-C on the fourth
            raise KeyboardInterrupt

    plan = dataclasses.replace(mnist_subject.data, record_dir=tmp_path / "record")
    subject = dataclasses.replace(mnist_subject, data=plan)
    handle = model.register_forward_pre_hook(interrupt_at_the_fourth_batch)
    try:
        with pytest.raises(KeyboardInterrupt):
            analyze(subject, analyzers=DATASET_ANALYZERS[:-1])
    finally:
        handle.remove()
    assert json.loads((tmp_path / "record" / "dataset-pass.json").read_text())["seen"] == 384

    fed = []
    handle = model.register_forward_pre_hook(lambda module, args: fed.append(len(args[0])))
    try:
        resumed = analyze(dataclasses.replace(subject, data=dataclasses.replace(plan, resume=True)),
                          analyzers=DATASET_ANALYZERS[:-1])  # fmt: skip
    finally:
        handle.remove()
    assert [size for size in fed if size in (128, 88)] == [128, 88]  # only the inputs after the record
    assert "the first 384 from an interrupted run's record" in artifact((resumed,), "dataset_confusion").caption
    for name in DATASET_ANALYZERS[:-1]:
        whole, again = artifact(report, name).data, artifact((resumed,), name).data
        for key, value in whole.items():
            if isinstance(value, np.ndarray):
                np.testing.assert_allclose(again[key], value, rtol=1e-9, equal_nan=True, err_msg=f"{name}.{key}")
    assert not (tmp_path / "record").exists()  # removed once the pass completed


def test_a_record_of_another_run_is_not_used(mnist_subject, tmp_path: Path) -> None:  # noqa: ANN001
    from introspect.dataset import records
    from introspect.dataset.passes import ConfusionReducer

    reducers = {"dataset_confusion": ConfusionReducer(10)}
    records.write_record(tmp_path, "one-run", 128, reducers)
    with pytest.raises(records.RecordError, match="of another run"):
        records.read_record(tmp_path, "another-run", reducers)
    record = json.loads((tmp_path / "dataset-pass.json").read_text())
    record["reducers"]["dataset_confusion"]["$object"] = "os.system"  # a record cannot name any other class
    (tmp_path / "dataset-pass.json").write_text(json.dumps(record))
    with pytest.raises(records.RecordError, match="'os.system' is not one of this run's reducers"):
        records.read_record(tmp_path, "one-run", reducers)
    assert records.read_record(tmp_path, "one-run", {}).seen == 128  # rebuilt only the reducers asked for
