#!/usr/bin/env python3
"""Train four small MNIST networks with PyTorch and export them to ONNX.

Produces, in --out (default: <repo>/examples):
  user-cryptonets.onnx / user-cryptonets.json
      Conv2d(1,5,k5,s2,p1) -> x*x -> Flatten -> Linear(845,100) -> x*x -> Linear(100,10)
  user-relu-cnn.onnx / user-relu-cnn.json
      Conv2d(1,4,k3) -> ReLU -> MaxPool2d(2) -> Flatten -> Linear(676,10)
  user-bnn.onnx / user-bnn.json
      binarized CNN, exported as exact integers in float32 tensors:
      Sub(image, c) -> Sign -> Conv(1,6,k5,s2, weights +-1, bias -t_c with t_c even
      in [-6,6]) -> Sign -> Flatten -> Gemm(864,10, integer weights in [-7,7],
      integer bias); trained with straight-through estimators (--bnn-epochs)
  user-qat-cnn.onnx / user-qat-cnn.json
      quantization-aware CNN trained with brevitas and exported with its QCDQ
      exporter: Sub(image, c) -> Sign (c as in user-bnn) -> Conv(1,8,k3,s2, 2-bit
      narrow weights {-1,0,1} * per-channel scale, float bias) -> Relu -> 2-bit
      unsigned activation {0..3} * scale -> MaxPool(2) -> Flatten -> Gemm(288,10,
      4-bit narrow weights [-7,7] * one per-tensor scale, float bias); every
      weight and the activation go through QuantizeLinear -> Clip ->
      DequantizeLinear, zero points 0; the stored float weights are their
      quantized values (integer * scale) (--qat-epochs; needs brevitas, see below)

The ONNX graphs use opset 13, a fixed input of shape [1, 1, 28, 28] named
"image" (float32 pixels in [0, 1]) and an output of shape [1, 10] named
"scores". The JSON sidecars record the test accuracy and the float scores of
test images 0..4 so an importer's float evaluation can be checked (for
user-bnn the scores are integers and the accuracy is that of the exported,
exactly integer, semantics; for user-qat-cnn both are those of the exported
graph as onnxruntime evaluates it, or of the PyTorch model in eval mode when
onnxruntime is not installed).

Usage (see examples/README.md):
  python3 -m venv ~/.venvs/onnx-export
  ~/.venvs/onnx-export/bin/pip install torch==2.13.0+cpu onnx numpy
  # for user-qat-cnn only:
  ~/.venvs/onnx-export/bin/pip install brevitas==0.13.4 onnxoptimizer==0.4.2 onnxruntime==1.32.0
  ~/.venvs/onnx-export/bin/python scripts/train_onnx_models.py
  ~/.venvs/onnx-export/bin/python scripts/train_onnx_models.py --only user-qat-cnn
"""

import argparse
import gzip
import json
import os
import random
import struct
from collections import OrderedDict
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


# ---------------------------------------------------------------- binarized CNN

BNN_CHANNELS = 6
BNN_KERNEL = 5
BNN_STRIDE = 2
BNN_SIDE = (28 - BNN_KERNEL) // BNN_STRIDE + 1          # 12
BNN_FEATURES = BNN_CHANNELS * BNN_SIDE * BNN_SIDE      # 864
BNN_T_MAX = 6        # |t_c| <= 6, t_c even: conv sum (25 terms of +-1, odd) - t_c is odd
BNN_W_MAX = 7        # dense weights are integers in [-7, 7]
BNN_W_SCALE = 7.0    # dense forward: round(clamp(w * 7, -7, 7)), latent w ~ [-1, 1]
BNN_T_SCALE = 8.0    # threshold forward: even(clamp(t * 8)), so Adam moves it visibly
BNN_SIGN_WIDTH = 5.0  # sign STE: gradient 1/width where |z| <= width (scaled hardtanh)
BNN_LOSS_SCALE = 0.05  # integer scores are large; the loss sees scores * 0.05
BNN_LR = 2e-3
BNN_ARCH = ("Sub(image,c) Sign Conv(1,6,kernel 5,stride 2,padding 0,weights +-1,bias -t_c,"
            "t_c even in [-6,6]) Sign Flatten Gemm(864,10,integer weights in [-7,7],integer bias)")


def bnn_input_threshold(x_train: torch.Tensor) -> float:
    """The training pixel mean rounded to k/255, plus 0.5/255, as a float32: no
    pixel value k/255 equals it, so Sign(image - c) is never 0."""
    k = int(round(float(x_train.double().mean()) * 255))
    return float(np.float32((k + 0.5) / 255))


def _ste(forward_value, surrogate):
    """forward_value in the forward pass, the gradient of surrogate backward."""
    return surrogate + (forward_value - surrogate).detach()


class _SignSTE(torch.autograd.Function):
    """sign (z is never 0 here) with a scaled hardtanh gradient."""

    @staticmethod
    def forward(ctx, z, width):
        ctx.save_for_backward(z)
        ctx.width = width
        return torch.where(z >= 0, 1.0, -1.0)

    @staticmethod
    def backward(ctx, grad):
        (z,) = ctx.saved_tensors
        return grad * (z.abs() <= ctx.width).to(grad.dtype) / ctx.width, None


class BinarizedCNN(nn.Module):
    """Latent float parameters; the forward pass computes exactly what the
    exported graph computes (quantized by straight-through estimators)."""

    def __init__(self, c: float):
        super().__init__()
        self.c = c
        self.conv_w = nn.Parameter(torch.empty(BNN_CHANNELS, 1, BNN_KERNEL, BNN_KERNEL).uniform_(-1, 1))
        self.thr = nn.Parameter(torch.zeros(BNN_CHANNELS))
        self.fc_w = nn.Parameter(torch.empty(10, BNN_FEATURES).uniform_(-1, 1) * 0.3)
        self.fc_b = nn.Parameter(torch.zeros(10))

    def quantized(self):
        conv_w = _ste(torch.where(self.conv_w >= 0, 1.0, -1.0), self.conv_w.clamp(-1, 1))
        t = self.thr * BNN_T_SCALE
        t = _ste(torch.clamp(2 * torch.round(t / 2), -BNN_T_MAX, BNN_T_MAX), t)
        w = torch.clamp(self.fc_w * BNN_W_SCALE, -BNN_W_MAX, BNN_W_MAX)
        w = _ste(torch.round(w), w)
        b = self.fc_b * BNN_W_SCALE
        b = _ste(torch.round(b), b)
        return conv_w, t, w, b

    def forward(self, x):
        conv_w, t, w, b = self.quantized()
        xb = torch.sign(x - self.c)
        z = nn.functional.conv2d(xb, conv_w, stride=BNN_STRIDE) - t.view(1, -1, 1, 1)
        h = _SignSTE.apply(z, BNN_SIGN_WIDTH).flatten(1)
        return h @ w.t() + b

    def deployed(self) -> nn.Module:
        with torch.no_grad():
            conv_w, t, w, b = self.quantized()
            return BinarizedCNNExport(self.c, conv_w, t, w, b)


class _Sign(nn.Module):
    def forward(self, x):
        return torch.sign(x)


class _SubConstant(nn.Module):
    def __init__(self, c: float):
        super().__init__()
        self.register_buffer("threshold", torch.tensor(c, dtype=torch.float32))

    def forward(self, x):
        return x - self.threshold


class BinarizedCNNExport(nn.Sequential):
    """The exported semantics: Sub, Sign, Conv, Sign, Flatten, Gemm with
    integer-valued float32 parameters."""

    def __init__(self, c, conv_w, t, w, b):
        conv = nn.Conv2d(1, BNN_CHANNELS, BNN_KERNEL, stride=BNN_STRIDE, padding=0, bias=True)
        fc = nn.Linear(BNN_FEATURES, 10)
        with torch.no_grad():
            conv.weight.copy_(conv_w)
            conv.bias.copy_(-t)
            fc.weight.copy_(w)
            fc.bias.copy_(b)
        super().__init__(OrderedDict([
            ("binarize", _SubConstant(c)), ("sign_in", _Sign()), ("conv", conv),
            ("sign", _Sign()), ("flatten", nn.Flatten()), ("fc", fc)]))


def bnn_check_integers(dep: nn.Module):
    """Assert the exported parameters have the promised integer values."""
    conv, fc = dep[2], dep[5]
    cw, cb, fw, fb = (p.detach() for p in (conv.weight, conv.bias, fc.weight, fc.bias))
    assert bool(((cw == 1) | (cw == -1)).all())
    assert bool((cb == torch.round(cb)).all() and (cb.remainder(2) == 0).all() and (cb.abs() <= BNN_T_MAX).all())
    assert bool((fw == torch.round(fw)).all() and (fw.abs() <= BNN_W_MAX).all())
    assert bool((fb == torch.round(fb)).all())


def build_bnn(x_train, y_train, x_test, y_test, epochs, seed):
    seed_everything(seed)
    model = BinarizedCNN(bnn_input_threshold(x_train))
    train(model, x_train, y_train, epochs, seed, lr=BNN_LR, loss_scale=BNN_LOSS_SCALE)
    dep = model.deployed().eval()
    bnn_check_integers(dep)
    # The training model's forward and the export module agree exactly.
    with torch.no_grad():
        assert torch.equal(model(x_test[:1000]), dep(x_test[:1000]))
    return dep


# ---------------------------------------------------------------- quantization-aware CNN (brevitas)

QAT_NAME = "user-qat-cnn"
QAT_CHANNELS = 8
QAT_SIDE = ((28 - 3) // 2 + 1) // 2                   # conv 13x13, pooled 6x6
QAT_FEATURES = QAT_CHANNELS * QAT_SIDE * QAT_SIDE     # 288
QAT_LR = 3e-3        # Adam, cosine-annealed to 0 over all steps, batch 64
QAT_ARCH = ("Sub(image,c) Sign Conv(1,8,kernel 3,stride 2,padding 0,2-bit narrow weights {-1,0,1}"
            " * per-output-channel scale,float bias) Relu 2-bit unsigned activation {0,1,2,3} * "
            "per-tensor scale MaxPool2d(2) Flatten Gemm(288,10,4-bit narrow weights [-7,7] * "
            "per-tensor scale,float bias); brevitas QCDQ export")
QAT_OPS = ["Sub", "Sign", "QuantizeLinear", "Clip", "DequantizeLinear", "Conv", "Relu",
           "QuantizeLinear", "Clip", "DequantizeLinear", "MaxPool", "Flatten",
           "QuantizeLinear", "Clip", "DequantizeLinear", "Gemm"]


def qat_cnn(c: float) -> nn.Module:
    """Learnt (PARAMETER_FROM_STATS) weight scales: per output channel for the
    conv, one for the whole Linear matrix; the ReLU's scale is learnt too
    (brevitas' default, initialised from activation statistics)."""
    import warnings
    warnings.filterwarnings("ignore", message="fast_hadamard_transform")
    import brevitas.nn as qnn
    from brevitas.inject.enum import ScalingImplType
    from brevitas.quant import Int8WeightPerChannelFloat, Int8WeightPerTensorFloat
    from brevitas.quant import Uint8ActPerTensorFloat
    learnt = dict(weight_scaling_impl_type=ScalingImplType.PARAMETER_FROM_STATS)
    return nn.Sequential(OrderedDict([
        ("binarize", _SubConstant(c)), ("sign_in", _Sign()),
        ("conv", qnn.QuantConv2d(1, QAT_CHANNELS, kernel_size=3, stride=2, padding=0, bias=True,
                                 weight_quant=Int8WeightPerChannelFloat, weight_bit_width=2,
                                 weight_narrow_range=True, bias_quant=None, **learnt)),
        ("relu", qnn.QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=2)),
        ("pool", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()),
        ("fc", qnn.QuantLinear(QAT_FEATURES, 10, bias=True,
                               weight_quant=Int8WeightPerTensorFloat, weight_bit_width=4,
                               weight_narrow_range=True, bias_quant=None, **learnt)),
    ]))


def export_qat(model, path: Path):
    """brevitas' QCDQ exporter over the TorchScript exporter, with the weights
    kept in float32 and quantized in the graph (export_weight_q_node)."""
    from brevitas.export import export_onnx_qcdq
    model.eval()
    export_onnx_qcdq(model, torch.zeros(1, 1, 28, 28), export_path=str(path),
                     input_names=["image"], output_names=["scores"], opset_version=OPSET,
                     do_constant_folding=True, keep_initializers_as_inputs=False,
                     dynamo=False, export_weight_q_node=True)
    m = onnx.load(str(path))
    onnx.checker.check_model(m, full_check=True)
    return m


def describe_qcdq(m):
    """The constant inputs of the QuantizeLinear / Clip / DequantizeLinear nodes."""
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type not in ("QuantizeLinear", "Clip", "DequantizeLinear"):
            continue
        print(f"    {n.op_type} {list(n.input)}")
        for name in n.input:
            if name in inits:
                a = inits[name]
                shown = a.tolist() if a.size <= 16 else f"<{a.size} values>"
                print(f"      {name}: {a.dtype} {list(a.shape)} {shown}")


def qat_onnx_scores(m, x):
    """Scores of the exported graph for every image (batch 1), with onnxruntime."""
    import onnxruntime as ort
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"image": x[i:i + 1].numpy()})[0] for i in range(len(x))])


def build_qat(x_train, y_train, x_test, y_test, epochs, seed, onnx_path):
    """Train, export and check; returns (ONNX model, test accuracy, first scores, evaluator)."""
    seed_everything(seed)
    model = qat_cnn(bnn_input_threshold(x_train))
    train(model, x_train, y_train, epochs, seed, lr=QAT_LR, cosine=True)
    model.eval()
    acc_torch = evaluate(model, x_test, y_test)

    def all_scores():
        with torch.no_grad():
            return torch.cat([model(x_test[i:i + 1000]) for i in range(0, len(x_test), 1000)])

    # Replace each latent float weight by its quantized value (integer * scale;
    # the scales are learnt parameters, so they do not move): the exported
    # QuantizeLinear then sees w / scale within rounding error of an integer,
    # never near a .5 tie, and the semantics stay exactly the same.
    before = all_scores()
    with torch.no_grad():
        for layer in (model.conv, model.fc):
            layer.weight.copy_(layer.quant_weight().value)
    torch_scores = all_scores()
    assert torch.equal(before, torch_scores)
    torch_scores = torch_scores.numpy()
    print(f"  PyTorch (eval) test accuracy {acc_torch:.4f}")
    with torch.no_grad():
        q = model.conv.quant_weight()
        print("  conv weight scales:", q.scale.flatten().tolist())
        print("  conv weight integers:", (q.value / q.scale).round().flatten().int().tolist())
        print("  conv bias:", model.conv.bias.tolist())
        print("  relu activation scale:", float(model.relu.act_quant.scale()))
        print("  fc weight scale:", model.fc.quant_weight().scale.flatten().tolist())
        print("  input threshold c:", model.binarize.threshold.item())

    m = export_qat(model, onnx_path)
    ops = [n.op_type for n in m.graph.node]
    assert ops == QAT_OPS, ops
    try:
        import onnxruntime
        scores = qat_onnx_scores(m, x_test)
        evaluator = f"onnxruntime {onnxruntime.__version__}"
        diff = np.abs(scores - torch_scores).max()
        disagree = int((scores.argmax(1) != torch_scores.argmax(1)).sum())
        print(f"  max |onnxruntime - torch| on the test set: {diff:.3g}; argmax differs on {disagree}")
    except ImportError:
        print("  onnxruntime not installed: recording the PyTorch eval-mode semantics")
        scores, evaluator = torch_scores, "PyTorch eval mode (onnxruntime not installed)"
    acc = float((scores.argmax(1) == y_test.numpy()).mean())
    return m, acc, scores[:5].tolist(), evaluator


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


def train(model, x, y, epochs, seed, batch=64, lr=1e-3, loss_scale=None, cosine=False):
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = None
    if cosine:  # lr annealed to 0 by a cosine over all steps, stepped per batch
        steps = epochs * ((len(x) + batch - 1) // batch)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            out = model(x[idx])
            if loss_scale is not None:
                out = out * loss_scale
            loss = loss_fn(out, y[idx])
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
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
    ap.add_argument("--epochs", type=int, default=3,
                    help="epochs for user-cryptonets and user-relu-cnn")
    ap.add_argument("--bnn-epochs", type=int, default=5, help="epochs for user-bnn")
    ap.add_argument("--qat-epochs", type=int, default=30, help="epochs for user-qat-cnn")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", "--only", nargs="+", default=None, metavar="NAME",
                    help="only these models (default: all four, in order), "
                         "e.g. --only user-qat-cnn")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)

    data = Path(args.data)
    x_train, y_train = load_split(data, "train")
    x_test, y_test = load_split(data, "t10k")
    print(f"train {tuple(x_train.shape)}, test {tuple(x_test.shape)}; torch {torch.__version__}, "
          f"onnx {onnx.__version__}")

    names = [name for name, _, _ in MODELS] + ["user-bnn", QAT_NAME]
    for name in args.models or []:
        if name not in names:
            ap.error(f"unknown model {name}; known: {', '.join(names)}")
    if not args.models or QAT_NAME in args.models:
        try:
            import brevitas
        except ImportError:
            ap.error(f"{QAT_NAME} needs brevitas (pip install brevitas==0.13.4 onnxoptimizer "
                     f"onnxruntime); leave it out with --models/--only")
        print(f"brevitas {brevitas.__version__}")

    for name, build, arch in MODELS + [("user-bnn", None, BNN_ARCH), (QAT_NAME, None, QAT_ARCH)]:
        if args.models and name not in args.models:
            continue
        print(f"== {name}: {arch}")
        if name == QAT_NAME:
            onnx_path = Path(args.out) / f"{name}.onnx"
            m, acc, first, evaluator = build_qat(x_train, y_train, x_test, y_test,
                                                 args.qat_epochs, args.seed, onnx_path)
            describe(m)
            describe_qcdq(m)
            print(f"  {onnx_path}: {onnx_path.stat().st_size} bytes")
            print(f"  exported graph test accuracy {acc:.4f} ({evaluator})")
            import brevitas
            meta = {
                "name": name,
                "architecture": arch,
                "test_accuracy": acc,
                "epochs": args.qat_epochs,
                "seed": args.seed,
                "torch_version": torch.__version__,
                "brevitas_version": brevitas.__version__,
                "evaluated_with": evaluator,
                "onnx_opset": OPSET,
                "first_test_scores": first,
            }
            with open(Path(args.out) / f"{name}.json", "w") as f:
                json.dump(meta, f, indent=2)
                f.write("\n")
            continue
        if build is None:
            epochs = args.bnn_epochs
            model = build_bnn(x_train, y_train, x_test, y_test, epochs, args.seed)
        else:
            epochs = args.epochs
            seed_everything(args.seed)
            model = build()
            train(model, x_train, y_train, epochs, args.seed)
        acc = evaluate(model, x_test, y_test)
        print(f"  test accuracy {acc:.4f}")
        with torch.no_grad():
            first = model(x_test[:5]).tolist()
        if build is None:
            assert all(v == int(v) for row in first for v in row), first
            first = [[int(v) for v in row] for row in first]  # exact integers

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
            if build is None:
                ops = [n.op_type for n in m.graph.node]
                assert ops == ["Sub", "Sign", "Conv", "Sign", "Flatten", "Gemm"], ops
                assert np.array_equal(got, np.array(first, dtype=np.float32)), (got, first)
        except ImportError:
            pass

        meta = {
            "name": name,
            "architecture": arch,
            "test_accuracy": acc,
            "epochs": epochs,
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
