#!/usr/bin/env python3
"""Train two small MNIST networks with PyTorch and export them to ONNX.

Produces, in --out (default: <repo>/examples):
  user-cryptonets.onnx / user-cryptonets.json
      Conv2d(1,5,k5,s2,p1) -> x*x -> Flatten -> Linear(845,100) -> x*x -> Linear(100,10)
  user-relu-cnn.onnx / user-relu-cnn.json
      Conv2d(1,4,k3) -> ReLU -> MaxPool2d(2) -> Flatten -> Linear(676,10)

The ONNX graphs use opset 13, a fixed input of shape [1, 1, 28, 28] named
"image" (float32 pixels in [0, 1]) and an output of shape [1, 10] named
"scores". The JSON sidecars record the test accuracy and the float scores of
test images 0..4 so an importer's float evaluation can be checked.

Usage (see examples/README.md):
  python3 -m venv ~/.venvs/onnx-export
  ~/.venvs/onnx-export/bin/pip install torch==2.13.0+cpu onnx numpy
  ~/.venvs/onnx-export/bin/python scripts/train_onnx_models.py
"""

import argparse
import gzip
import json
import os
import random
import struct
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

REPO_ROOT = Path(__file__).resolve().parent.parent
OPSET = 13


# ---------------------------------------------------------------- data

def _open_idx(directory: Path, stem: str):
    for name in (stem, stem + ".gz"):
        p = directory / name
        if p.exists():
            return gzip.open(p, "rb") if name.endswith(".gz") else open(p, "rb")
    raise FileNotFoundError(f"{stem}(.gz) not found in {directory}")


def load_idx(directory: Path, stem: str) -> np.ndarray:
    with _open_idx(directory, stem) as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{stem}: unsupported IDX header")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    return arr.reshape(dims)


def load_split(directory: Path, prefix: str):
    images = load_idx(directory, f"{prefix}-images-idx3-ubyte")
    labels = load_idx(directory, f"{prefix}-labels-idx1-ubyte")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


# ---------------------------------------------------------------- models

class Square(nn.Module):
    def forward(self, x):
        return x * x


def cryptonets() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 5, kernel_size=5, stride=2, padding=1, bias=True),
        Square(),
        nn.Flatten(),
        nn.Linear(5 * 13 * 13, 100),
        Square(),
        nn.Linear(100, 10),
    )


def relu_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, kernel_size=3, stride=1, padding=0),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 13 * 13, 10),
    )


MODELS = [
    ("user-cryptonets", cryptonets,
     "Conv2d(1,5,kernel 5,stride 2,padding 1) square Flatten Linear(845,100) square Linear(100,10)"),
    ("user-relu-cnn", relu_cnn,
     "Conv2d(1,4,kernel 3,stride 1,padding 0) ReLU MaxPool2d(2) Flatten Linear(676,10)"),
]


# ---------------------------------------------------------------- training

def seed_everything(seed: int):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def evaluate(model, x, y, batch=1000):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += (model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return correct / len(x)


def train(model, x, y, epochs, seed, batch=64, lr=1e-3):
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        print(f"  epoch {epoch + 1}/{epochs}: train loss {total / len(x):.4f}", flush=True)


# ---------------------------------------------------------------- export

def export(model, path: Path):
    model.eval()
    dummy = torch.zeros(1, 1, 28, 28)
    kwargs = dict(
        input_names=["image"],
        output_names=["scores"],
        opset_version=OPSET,
        do_constant_folding=True,
        export_params=True,
    )
    try:
        torch.onnx.export(model, (dummy,), str(path), dynamo=False, **kwargs)
    except TypeError:  # older torch without the dynamo argument
        torch.onnx.export(model, (dummy,), str(path), **kwargs)
    m = onnx.load(str(path))
    onnx.checker.check_model(m, full_check=True)
    return m


def describe(m):
    print("  opset:", [(o.domain or "ai.onnx", o.version) for o in m.opset_import])
    print("  inputs:", [(i.name, [d.dim_value or d.dim_param for d in i.type.tensor_type.shape.dim])
                        for i in m.graph.input])
    print("  outputs:", [(o.name, [d.dim_value or d.dim_param for d in o.type.tensor_type.shape.dim])
                         for o in m.graph.output])
    print("  nodes:", [n.op_type for n in m.graph.node])
    for n in m.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        print(f"    {n.op_type}({', '.join(n.input)}) -> {', '.join(n.output)} {attrs}")
    print("  initializers:", [(t.name, list(t.dims)) for t in m.graph.initializer])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO_ROOT / ".." / "shared" / "data" / "mnist"),
                    help="directory with the MNIST IDX files (optionally .gz)")
    ap.add_argument("--out", default=str(REPO_ROOT / "examples"), help="output directory")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)

    data = Path(args.data)
    x_train, y_train = load_split(data, "train")
    x_test, y_test = load_split(data, "t10k")
    print(f"train {tuple(x_train.shape)}, test {tuple(x_test.shape)}; torch {torch.__version__}, "
          f"onnx {onnx.__version__}")

    for name, build, arch in MODELS:
        print(f"== {name}: {arch}")
        seed_everything(args.seed)
        model = build()
        train(model, x_train, y_train, args.epochs, args.seed)
        acc = evaluate(model, x_test, y_test)
        print(f"  test accuracy {acc:.4f}")
        with torch.no_grad():
            first = model(x_test[:5]).tolist()

        onnx_path = Path(args.out) / f"{name}.onnx"
        m = export(model, onnx_path)
        describe(m)
        print(f"  {onnx_path}: {onnx_path.stat().st_size} bytes")

        # Cross-check the exported graph with ONNX's reference evaluator.
        try:
            from onnx.reference import ReferenceEvaluator
            ref = ReferenceEvaluator(m)
            got = np.stack([ref.run(None, {"image": x_test[i:i + 1].numpy()})[0][0] for i in range(5)])
            print(f"  max |onnx_ref - torch| on test 0..4: {np.abs(got - np.array(first)).max():.3g}")
        except ImportError:
            pass

        meta = {
            "name": name,
            "architecture": arch,
            "test_accuracy": acc,
            "epochs": args.epochs,
            "seed": args.seed,
            "torch_version": torch.__version__,
            "onnx_opset": OPSET,
            "first_test_scores": first,
        }
        with open(Path(args.out) / f"{name}.json", "w") as f:
            json.dump(meta, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
