#!/usr/bin/env python3
"""Train a CryptoDL-style MNIST CNN with PyTorch and export it to ONNX.

CryptoDL (Hesamifard et al., arXiv 1711.05189) replaces ReLU by a low-degree
polynomial fitted to it and trains the network with that polynomial in place,
with batch normalization keeping each activation's input where the fit holds,
and average pooling. This script trains such a network:

    Conv(1->C1, 5x5) -> BatchNorm -> AvgPool 2x2 -> p
    -> Conv(C1->C2, 5x5) -> BatchNorm -> AvgPool 2x2 -> p -> Flatten -> Gemm(16*C2 -> 10)

where p(x) = c0 + c1 x + c2 x^2 is the least-squares fit of ReLU on 201 evenly
spaced points of [-4, 4], the same fit as Obscura's `cryptodl-mnist`
(PolynomialNetwork.reluApproximation(degree: 2, bound: 4)). Two activations
keep the network's exact integer form within the 126 bits that BFV's CRT join
holds. Pooling before the activation (batch normalization is per channel, so it
commutes with the average) lets an importer fold each pool into its convolution
(a 6x6 kernel at stride 2) and needs a quarter of the squares.

The ONNX graph writes p as c2 * (x + s)^2 + r with s = c1 / (2 c2) and
r = c0 - c1^2 / (4 c2): the same function, as one chain of operators
(Add, Mul(x, x), Mul, Add) that an importer reads without branches.

Training: the 60,000 MNIST training images (or the first 55,000 with
--validation, which reports on the last 5,000 instead of the test images),
random affine augmentation (rotation, scale, shift), AdamW (Adam when
--weight-decay is 0, the default) with a one-cycle schedule. The 10,000 test images are
evaluated once, at the end (and the teacher's accuracy on them printed, which chooses nothing).

--distill PATH (the bundled model's recipe) first trains a teacher of the same layers with
ReLU and max pooling (seed 1000, the same images, options and augmentation scheme) and keeps
it at PATH, or reads it back when PATH holds one trained with the same options; the
network is then trained on (1 - w) * cross-entropy + w * T^2 * KL(teacher's softmax(z/T) ||
the network's), Hinton et al.'s distillation (w = --distill-weight, T = --distill-temperature).
Only the polynomial network is exported. Give validation runs their own PATH.

--members K trains K networks from seeds SEED..SEED+K-1 and exports them as one
network of the same kind whose scores are their sum: channels side by side
(K*C1, K*C2), the second convolution block-diagonal, the dense layer's inputs
side by side. Its exact integer form is about one bit wider than a member's.

Usage (the venv of examples/README.md; the bundled model):
  ~/.venvs/onnx-export/bin/python scripts/train_cryptodl.py \
      --data ../shared/data/mnist --out examples --epochs 30 --seed 0 --distill teacher.pt
"""

import argparse
import gzip
import json
import struct
import time
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from torch import nn

REPO_ROOT = Path(__file__).resolve().parent.parent
OPSET = 13


def read_idx(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_mnist(directory):
    d = Path(directory)

    def find(stem):
        for name in (stem + ".gz", stem):
            if (d / name).exists():
                return d / name
        raise FileNotFoundError(d / stem)

    def images(stem):
        return torch.from_numpy(read_idx(find(stem)).astype(np.float32) / 255).unsqueeze(1)

    def labels(stem):
        return torch.from_numpy(read_idx(find(stem)).astype(np.int64))

    return (images("train-images-idx3-ubyte"), labels("train-labels-idx1-ubyte"),
            images("t10k-images-idx3-ubyte"), labels("t10k-labels-idx1-ubyte"))


def relu_fit(degree=2, bound=4.0):
    """Least-squares fit of ReLU on 201 evenly spaced points of [-bound, bound], x^0 first."""
    x = np.linspace(-bound, bound, 201)
    vandermonde = np.vander(x, degree + 1, increasing=True)
    coefficients, *_ = np.linalg.lstsq(vandermonde, np.maximum(x, 0), rcond=None)
    return [float(c) for c in coefficients]


class FittedReLU(nn.Module):
    """p(x) = c0 + c1 x + c2 x^2, written as c2 (x + s)^2 + r (one chain of ONNX operators)."""

    def __init__(self, coefficients):
        super().__init__()
        c0, c1, c2 = coefficients
        self.c2 = c2
        self.s = c1 / (2 * c2)
        self.r = c0 - c1 * c1 / (4 * c2)

    def forward(self, x):
        y = x + self.s
        y = y * y
        return y * self.c2 + self.r


class CryptoDLNet(nn.Module):
    """The network above; with `coefficients=None` the same layers with ReLU and max pooling
    (the distillation teacher, which is never exported)."""

    def __init__(self, c1, c2, coefficients, hidden=0):
        super().__init__()
        self.conv1 = nn.Conv2d(1, c1, 5)
        self.bn1 = nn.BatchNorm2d(c1)
        self.conv2 = nn.Conv2d(c1, c2, 5)
        self.bn2 = nn.BatchNorm2d(c2)
        self.act = FittedReLU(coefficients) if coefficients else nn.ReLU()
        self.pool = nn.AvgPool2d(2) if coefficients else nn.MaxPool2d(2)
        # An optional hidden dense layer with a third activation (a deeper network).
        self.hidden = nn.Sequential(nn.Linear(16 * c2, hidden), nn.BatchNorm1d(hidden), self.act) if hidden else nn.Identity()
        self.fc = nn.Linear(hidden or 16 * c2, 10)

    def forward(self, x):
        x = self.act(self.pool(self.bn1(self.conv1(x))))
        x = self.act(self.pool(self.bn2(self.conv2(x))))
        return self.fc(self.hidden(torch.flatten(x, 1)))


def augment(batch, generator):
    """Random rotation (±10°), scale (0.9-1.1) and shift (±2 px) per image."""
    n = batch.shape[0]
    angle = (torch.rand(n, generator=generator) * 2 - 1) * (10 * np.pi / 180)
    scale = 1 + (torch.rand(n, generator=generator) * 2 - 1) * 0.1
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * (2 / 14)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, batch.shape, align_corners=False)
    return F.grid_sample(batch, grid, align_corners=False, padding_mode="zeros")


def accuracy(model, images, labels):
    model.eval()
    with torch.no_grad():
        predictions = torch.cat([model(images[i:i + 1000]).argmax(1) for i in range(0, len(images), 1000)])
    return (predictions == labels).float().mean().item()


def train(args, seed, coefficients, train_x, train_y, teacher=None):
    """One network, trained from `seed` on the given images; with a `teacher`, the loss mixes
    cross-entropy with the teacher's softened scores (Hinton et al.'s distillation, weight
    --distill-weight, temperature --distill-temperature) on the same augmented batch."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = CryptoDLNet(*args.channels, coefficients, hidden=args.hidden)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps = (len(train_x) + args.batch - 1) // args.batch
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=steps)
    start = time.time()
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(train_x), generator=generator)
        total, correct = 0.0, 0
        for i in range(steps):
            index = order[i * args.batch:(i + 1) * args.batch]
            x, y = augment(train_x[index], generator), train_y[index]
            optimizer.zero_grad()
            out = model(x)
            loss = F.cross_entropy(out, y, label_smoothing=args.label_smoothing)
            if teacher is not None:
                with torch.no_grad():
                    target = F.softmax(teacher(x) / args.distill_temperature, 1)
                soft = F.kl_div(F.log_softmax(out / args.distill_temperature, 1), target, reduction="batchmean")
                loss = (1 - args.distill_weight) * loss + args.distill_weight * args.distill_temperature ** 2 * soft
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(index)
            correct += (out.argmax(1) == y).sum().item()
        print(f"seed {seed}, epoch {epoch}/{args.epochs}: loss {total / len(train_x):.4f}, train {correct / len(train_x):.4f}, "
              f"{time.time() - start:.0f} s", flush=True)
    return model


def merge(members, coefficients):
    """One network whose scores are the members' sum: channels side by side, the second
    convolution block-diagonal (each member's channels read only its own), the dense layer's
    inputs side by side and its biases added. Same layers, same activations: CryptoDL's kind."""
    c1, c2 = members[0].conv1.out_channels, members[0].conv2.out_channels
    k = len(members)
    merged = CryptoDLNet(k * c1, k * c2, coefficients)
    with torch.no_grad():
        merged.conv1.weight.copy_(torch.cat([m.conv1.weight for m in members]))
        merged.conv1.bias.copy_(torch.cat([m.conv1.bias for m in members]))
        merged.conv2.weight.zero_()
        for i, m in enumerate(members):
            merged.conv2.weight[i * c2:(i + 1) * c2, i * c1:(i + 1) * c1] = m.conv2.weight
        merged.conv2.bias.copy_(torch.cat([m.conv2.bias for m in members]))
        for bn in ("bn1", "bn2"):
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(getattr(merged, bn), name).copy_(torch.cat([getattr(getattr(m, bn), name) for m in members]))
        # Flatten is channel-major, so member i's inputs are the i-th block of 16·c2.
        merged.fc.weight.copy_(torch.cat([m.fc.weight for m in members], dim=1))
        merged.fc.bias.copy_(sum(m.fc.bias for m in members))
    return merged.eval()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(REPO_ROOT.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--out", default=str(REPO_ROOT / "examples"))
    parser.add_argument("--name", default="cryptodl-cnn")
    parser.add_argument("--channels", type=int, nargs=2, default=[32, 64])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--weight-decay", type=float, default=0.0, help="AdamW's decoupled weight decay")
    parser.add_argument("--label-smoothing", type=float, default=0.0)
    parser.add_argument("--hidden", type=int, default=0,
                        help="with --validation only: a hidden dense layer of this many units and a third activation "
                             "(its exact integer form exceeds the 126 bits Obscura holds)")
    parser.add_argument("--members", type=int, default=1,
                        help="train this many networks (seeds SEED, SEED+1, ...) and export them as one whose scores are their sum")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--distill", metavar="PATH",
                        help="distil from a ReLU teacher of the same layers (max pooling), trained from seed 1000 on the "
                             "same images and kept at PATH (read back if it exists)")
    parser.add_argument("--distill-weight", type=float, default=0.5)
    parser.add_argument("--distill-temperature", type=float, default=4.0)
    parser.add_argument("--validation", action="store_true",
                        help="train on the first 55,000 training images, report on the last 5,000; export nothing")
    args = parser.parse_args()
    if args.members < 1 or args.hidden < 0:
        parser.error("--members must be at least 1 and --hidden at least 0")
    if args.hidden and (args.members > 1 or not args.validation):
        parser.error("--hidden is a validation experiment: Obscura cannot run the network exactly, and --members does not merge it")

    train_x, train_y, test_x, test_y = load_mnist(args.data)
    if args.validation:
        train_x, train_y, test_x, test_y = train_x[:55000], train_y[:55000], train_x[55000:], train_y[55000:]
    coefficients = relu_fit()
    teacher = None
    if args.distill:
        teacher_path = Path(args.distill)
        trained_on = {name: getattr(args, name) for name in
                      ("validation", "channels", "epochs", "batch", "lr", "weight_decay", "label_smoothing", "hidden")}
        if teacher_path.exists():
            saved = torch.load(teacher_path)
            if saved["trained_on"] != trained_on:
                parser.error(f"the teacher in {teacher_path} was trained with {saved['trained_on']}, not {trained_on}")
            teacher = CryptoDLNet(*args.channels, None, hidden=args.hidden)
            teacher.load_state_dict(saved["state"])
        else:
            teacher = train(args, 1000, None, train_x, train_y)
            torch.save({"trained_on": trained_on, "state": teacher.state_dict()}, teacher_path)
        teacher.eval()
        print(f"teacher accuracy: {accuracy(teacher, test_x, test_y):.4f}", flush=True)
    members = []
    for member in range(args.members):
        members.append(train(args, args.seed + member, coefficients, train_x, train_y, teacher))
        if args.members > 1 and args.validation:
            print(f"member {member}: accuracy {accuracy(members[-1], test_x, test_y):.4f}", flush=True)
    model = members[0] if args.members == 1 else merge(members, coefficients)
    if args.members > 1:
        with torch.no_grad():
            for m in members:
                m.eval()
            gap = (model(test_x[:256]) - sum(m(test_x[:256]) for m in members)).abs().max().item()
        assert gap < 1e-3, f"the merged network's scores differ from the members' sum by {gap}"
        args.channels = [args.members * c for c in args.channels]
    split = "validation (training images 55,000-59,999)" if args.validation else "test"
    result = accuracy(model, test_x, test_y)
    print(f"{split} accuracy: {result:.4f}", flush=True)
    if args.validation:
        return

    model.eval()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / f"{args.name}.onnx"
    torch.onnx.export(model, torch.zeros(1, 1, 28, 28), str(onnx_path), input_names=["image"], output_names=["scores"],
                      opset_version=OPSET, dynamo=False, do_constant_folding=True)
    onnx.checker.check_model(onnx.load(str(onnx_path)))
    with torch.no_grad():
        first = model(test_x[:5]).tolist()
    sidecar = {
        "architecture": f"Conv(1,{args.channels[0]},k5) -> BN -> AvgPool2 -> p -> Conv({args.channels[0]},{args.channels[1]},k5) "
                        f"-> BN -> AvgPool2 -> p -> Flatten -> Gemm({16 * args.channels[1]},10); "
                        f"p(x) = {coefficients[0]:.6f} + {coefficients[1]:.6f} x + {coefficients[2]:.6f} x^2",
        "activation_coefficients": coefficients,
        "test_accuracy": result,
        "epochs": args.epochs, "batch": args.batch, "lr": args.lr, "seed": args.seed,
        "weight_decay": args.weight_decay, "label_smoothing": args.label_smoothing, "members": args.members,
        "distillation": {"teacher": "the same layers with ReLU and max pooling, seed 1000", "weight": args.distill_weight,
                         "temperature": args.distill_temperature} if args.distill else None,
        "torch": torch.__version__, "onnx": onnx.__version__, "numpy": np.__version__,
        "first_test_scores": first,
    }
    (out / f"{args.name}.json").write_text(json.dumps(sidecar, indent=2) + "\n")
    print(f"wrote {onnx_path}", flush=True)


if __name__ == "__main__":
    main()
