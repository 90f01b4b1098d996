"""Building on the meta device skips initialization without changing what gets built."""

import subprocess
import sys

import torch

from introspect.meta_build import on_meta_device


def test_meta_build_has_the_real_builds_shapes_and_leaves_real_tensors_alone() -> None:
    with on_meta_device():
        skeleton = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Linear(8, 4))
        torch.nn.init.kaiming_normal_(skeleton[0].weight)
        torch.nn.init.normal_(tensor=skeleton[1].weight)
        real = torch.zeros(5, device="cpu")
        torch.nn.init.normal_(real)  # not a meta tensor: still initialized
    built = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Linear(8, 4))
    assert all(tensor.is_meta for tensor in skeleton.parameters())
    assert [t.shape for t in skeleton.parameters()] == [t.shape for t in built.parameters()]
    assert real.abs().sum() > 0 and not real.is_meta
    torch.nn.init.normal_(torch.empty(3))  # the mode is gone after the block


def test_meta_build_of_a_normal_initialized_network_does_not_import_dynamo() -> None:
    # torch._refs' meta normal_ imports torch._dynamo on first use: 1.1 s of every analyze run.
    code = (
        "import sys, torch\n"
        "from introspect.meta_build import on_meta_device\n"
        "with on_meta_device():\n"
        "    layer = torch.nn.Linear(4, 4)\n"
        "    torch.nn.init.kaiming_normal_(layer.weight)\n"
        "    layer.weight.normal_()\n"
        "    torch.nn.init.xavier_normal_(layer.weight)\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert finished.stdout.strip() == "False"
