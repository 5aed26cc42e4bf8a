#!/usr/bin/env python3
"""Concrete ML on one of examples/*.onnx, beside `obscura import` + `obscura bench infer`:
compile_onnx_model (Concrete ML 1.9 reads opset 14: pass --opset14; a BNN falls back to an
equivalent torch module), quantized clear accuracy on the 10,000 test images, simulated accuracy
on the first N, and real encrypted runs through the deployment API (client and server separated
by serialization) on a few images.

    ~/.venvs/peers-concrete/bin/python scripts/concrete_onnx.py --onnx examples/user-bnn.onnx --name bnn-n4 --n-bits 4

(the peer's virtual environment as ../shared/peers/concrete-ml/ sets it up).

--brevitas-qat (examples/user-qat-cnn.onnx) takes the path Concrete ML recommends for brevitas QAT
networks, compile_brevitas_qat_model on a brevitas module (brevitas 0.10.2, the version Concrete ML
1.9.0 pins) rebuilt with train_onnx_models.qat_cnn and loaded from the ONNX initializers. Concrete
ML 1.9.0 cannot compile that module as trained (its QuantizedConv breaks on per-output-channel
weight scales, and it wants a Quant node after MaxPool), so after recording that error it compiles
an equivalent module: a 2-bit QuantIdentity (scale 1) after Sign, the conv with the integer
weights {-1,0,1} (scale 1, no bias), then x * per-channel scale + bias, the same QuantReLU, and a
QuantIdentity with the ReLU's scale and bit width after MaxPool (exact on the pooled values). Both
modules are checked against each other on the 10,000 test images. With --p-error default and
--rounding-bits 0 Concrete ML's defaults apply (p_error 2^-40 per PBS, no rounding):

    ~/.venvs/peers-concrete/bin/python scripts/concrete_onnx.py --onnx examples/user-qat-cnn.onnx \
        --name qat-cnn --brevitas-qat --p-error default --rounding-bits 0 --fhe-budget 300"""
import argparse, json, os, shutil, statistics, sys, time, traceback
import numpy as np, onnx, onnx.numpy_helper as nh, torch
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../shared/peers/concrete-ml"))
from idx_data import load_split

ap = argparse.ArgumentParser()
ap.add_argument("--onnx", required=True); ap.add_argument("--name", required=True)
ap.add_argument("--n-bits", type=int, default=4); ap.add_argument("--rounding-bits", type=int, default=6)
ap.add_argument("--p-error", type=lambda v: None if v == "default" else float(v), default=0.01,
                help="p_error per PBS; 'default': Concrete ML's (2^-40 when p_error and global_p_error are unset)"); ap.add_argument("--n-sim", type=int, default=1000)
ap.add_argument("--n-fhe", type=int, default=3); ap.add_argument("--fhe-budget", type=float, default=240)
ap.add_argument("--force-torch", action="store_true"); ap.add_argument("--opset14", action="store_true")
ap.add_argument("--input-bits", type=int, default=0)
ap.add_argument("--brevitas-qat", action="store_true",
                help="compile_brevitas_qat_model on the brevitas module of scripts/train_onnx_models.py (user-qat-cnn)")
a = ap.parse_args()
torch.set_num_threads(1)
from concrete import fhe
from concrete.ml.deployment import FHEModelClient, FHEModelDev, FHEModelServer
from concrete.ml.torch.compile import compile_onnx_model, compile_torch_model

xtr, ytr, xte, yte, _ = load_split("mnist", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../shared/data/mnist"))
xtr = (xtr.astype(np.float32) / 255.0)[:, None]; xte = (xte.astype(np.float32) / 255.0)[:, None]
yte = yte.astype(np.int64); calib = xtr[:1000]
model = onnx.load(a.onnx)
ap_opset = a.opset14
if ap_opset:
    from onnx import version_converter
    model = version_converter.convert_version(model, 14)
res = {"name": a.name, "onnx": a.onnx, "n_bits": a.n_bits, "rounding_threshold_bits": a.rounding_bits, "p_error": a.p_error}

def torch_bnn(m):
    W = {i.name: torch.tensor(nh.to_array(i)) for i in m.graph.initializer}
    class BNN(torch.nn.Module):
        def __init__(s):
            super().__init__()
            s.conv = torch.nn.Conv2d(1, 6, 5, stride=2); s.fc = torch.nn.Linear(864, 10)
            with torch.no_grad():
                s.conv.weight.copy_(W["conv.weight"]); s.conv.bias.copy_(W["conv.bias"])
                s.fc.weight.copy_(W["fc.weight"]); s.fc.bias.copy_(W["fc.bias"])
            s.thr = float(W["binarize.threshold"])
        def forward(s, x):
            x = torch.sign(x - s.thr); x = torch.sign(s.conv(x)); return s.fc(x.flatten(1))
    return BNN().eval()

def brevitas_qat(m):
    """(module as trained, equivalent module Concrete ML 1.9 compiles), both loaded from the ONNX
    initializers of user-qat-cnn. Weight and activation scales load as the learnt threshold values
    brevitas stores: scale * max integer (1 for 2-bit narrow, 7 for 4-bit narrow, 3 for uint2)."""
    import warnings; warnings.filterwarnings("ignore")
    from collections import OrderedDict
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import train_onnx_models as T
    import brevitas.nn as qnn
    from brevitas.inject.enum import ScalingImplType
    from brevitas.quant import Int8ActPerTensorFloat, Int8WeightPerTensorFloat, Uint8ActPerTensorFloat
    W = {i.name: nh.to_array(i) for i in m.graph.initializer}
    sc = W["/conv/weight_quant/export_handler/Constant_output_0"].astype(np.float32)
    sr = W["/relu/act_quant/export_handler/Constant_output_0"].astype(np.float32)
    sf = W["/fc/weight_quant/export_handler/Constant_output_0"].astype(np.float32)
    c = float(W["binarize.threshold"]); t = lambda v: torch.tensor(np.asarray(v, dtype=np.float32))
    relu_key = "relu.act_quant.fused_activation_quant_proxy.tensor_quant.scaling_impl.value"
    fc_key = "fc.weight_quant.tensor_quant.scaling_impl.value"
    trained = T.qat_cnn(c)
    r = trained.load_state_dict({"binarize.threshold": t(c), "conv.weight": t(W["conv.weight"]), "conv.bias": t(W["conv.bias"]),
        "conv.weight_quant.tensor_quant.scaling_impl.value": t(sc.reshape(-1, 1, 1, 1)), relu_key: t(sr * 3),
        "fc.weight": t(W["fc.weight"]), "fc.bias": t(W["fc.bias"]), fc_key: t(sf * 7)})
    assert not r.missing_keys and not r.unexpected_keys, r
    wint = np.round(W["conv.weight"] / sc.reshape(-1, 1, 1, 1))
    assert np.abs(wint).max() <= 1 and np.allclose(wint * sc.reshape(-1, 1, 1, 1), W["conv.weight"], atol=1e-6)
    class ChannelAffine(torch.nn.Module):
        def __init__(s, scale, bias):
            super().__init__(); s.register_buffer("scale", t(scale).reshape(1, -1, 1, 1)); s.register_buffer("bias", t(bias).reshape(1, -1, 1, 1))
        def forward(s, x): return x * s.scale + s.bias
    const = lambda v: dict(scaling_impl_type=ScalingImplType.CONST, scaling_const=v)
    equiv = torch.nn.Sequential(OrderedDict([
        ("binarize", T._SubConstant(c)), ("sign_in", T._Sign()),
        ("sign_q", qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat, bit_width=2, narrow_range=True, min_val=-1.0, max_val=1.0, **const(1.0))),
        ("conv", qnn.QuantConv2d(1, T.QAT_CHANNELS, kernel_size=3, stride=2, padding=0, bias=False, weight_quant=Int8WeightPerTensorFloat,
                                 weight_bit_width=2, weight_narrow_range=True, weight_scaling_impl_type=ScalingImplType.CONST, weight_scaling_const=1.0)),
        ("scale_bias", ChannelAffine(sc, W["conv.bias"])),
        ("relu", qnn.QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=2)),
        ("pool", torch.nn.MaxPool2d(2)),
        ("pool_q", qnn.QuantIdentity(act_quant=Uint8ActPerTensorFloat, bit_width=2, max_val=3 * float(sr), **const(3 * float(sr)))),
        ("flatten", torch.nn.Flatten()),
        ("fc", qnn.QuantLinear(T.QAT_FEATURES, 10, bias=True, weight_quant=Int8WeightPerTensorFloat, weight_bit_width=4,
                               weight_narrow_range=True, bias_quant=None, weight_scaling_impl_type=ScalingImplType.PARAMETER_FROM_STATS))]))
    r = equiv.load_state_dict({"conv.weight": t(wint), "fc.weight": t(W["fc.weight"]), "fc.bias": t(W["fc.bias"]),
                               relu_key: t(sr * 3), fc_key: t(sf * 7)}, strict=False)
    assert set(r.missing_keys) == {"binarize.threshold", "scale_bias.scale", "scale_bias.bias"} and not r.unexpected_keys, r
    return trained.eval(), equiv.eval()

rb = a.rounding_bits if a.rounding_bits > 0 else None
if a.input_bits:
    a.n_bits = {"model_inputs": a.input_bits, "op_inputs": a.n_bits, "op_weights": a.n_bits, "model_outputs": a.n_bits}
res["n_bits"] = a.n_bits; res["opset14_converted"] = a.opset14
qm = None
if a.brevitas_qat:
    import brevitas
    from concrete.ml.torch.compile import compile_brevitas_qat_model
    a.n_bits = None; res["n_bits"] = "None (Concrete ML's QAT default: 8-bit model inputs and outputs, brevitas' bit widths inside)"
    res["brevitas_version"] = brevitas.__version__
    trained, equiv = brevitas_qat(model)
    with torch.no_grad():
        st_, se_ = (np.concatenate([n(torch.tensor(xte[i:i+1000])).numpy() for i in range(0, 10000, 1000)]) for n in (trained, equiv))
    res["torch_module_float_acc"] = float(np.mean(st_.argmax(1) == yte)); res["equiv_module_float_acc"] = float(np.mean(se_.argmax(1) == yte))
    res["equiv_vs_trained_maxabs"] = float(np.abs(st_ - se_).max()); res["equiv_vs_trained_argmax_differ"] = int((st_.argmax(1) != se_.argmax(1)).sum())
    print(f"[brevitas {brevitas.__version__}] trained module {res['torch_module_float_acc']:.4f} equivalent {res['equiv_module_float_acc']:.4f} "
          f"max |diff| {res['equiv_vs_trained_maxabs']:.3g} argmax differs on {res['equiv_vs_trained_argmax_differ']}", flush=True)
    for tag, net in (("trained", trained), ("equivalent", equiv)):
        t0 = time.perf_counter()
        try:
            qm = compile_brevitas_qat_model(net, calib, n_bits=None, rounding_threshold_bits=rb, p_error=a.p_error)
            res["path"] = f"compile_brevitas_qat_model ({tag} module)"; res["compile_s"] = time.perf_counter() - t0
            break
        except Exception as e:
            res[f"brevitas_{tag}_error"] = f"{type(e).__name__}: {e}"; traceback.print_exc()
            print(f"[brevitas] {tag} module FAILED", res[f"brevitas_{tag}_error"], flush=True)
    if qm is None: sys.exit("compile_brevitas_qat_model failed on both modules")
elif not a.force_torch:
    t0 = time.perf_counter()
    try:
        qm = compile_onnx_model(model, calib, n_bits=a.n_bits, rounding_threshold_bits=rb, p_error=a.p_error)
        res["path"] = "compile_onnx_model"
    except Exception as e:
        res["onnx_error"] = f"{type(e).__name__}: {e}"; traceback.print_exc(); print("[onnx] FAILED", res["onnx_error"], flush=True)
    res["compile_s"] = time.perf_counter() - t0
if qm is None:
    net = torch_bnn(model)
    with torch.no_grad():
        tp = np.concatenate([net(torch.tensor(xte[i:i+1000])).argmax(1).numpy() for i in range(0, 10000, 1000)])
    res["torch_module_float_acc"] = float(np.mean(tp == yte))
    t0 = time.perf_counter()
    qm = compile_torch_model(net, calib, n_bits=a.n_bits, rounding_threshold_bits=rb, p_error=a.p_error)
    res["compile_s"] = time.perf_counter() - t0; res["path"] = "compile_torch_model (torch.sign module from ONNX initializers)"
c = qm.fhe_circuit
st = {}
res["p_error"] = a.p_error if a.p_error is not None else "default (Concrete ML: 2^-40 per PBS)"
for k in ["programmable_bootstrap_count", "complexity", "p_error", "global_p_error", "size_of_bootstrap_keys",
          "size_of_keyswitch_keys", "size_of_secret_keys", "size_of_inputs", "size_of_outputs"]:
    try: st[k] = float(getattr(c, k))
    except Exception as e: st[k] = f"n/a {e}"
try: st["max_integer_bit_width"] = int(c.graph.maximum_integer_bit_width())
except Exception as e: st["max_integer_bit_width"] = f"n/a {e}"
try: st["pbs_per_param"] = {str(k): int(v) for k, v in c.programmable_bootstrap_count_per_parameter.items()}
except Exception as e: st["pbs_per_param"] = f"n/a {e}"
res["circuit"] = st
print(f"[compile] {res['path']} {res['compile_s']:.1f}s {json.dumps(st)}", flush=True)

t0 = time.perf_counter()
qs = np.concatenate([qm.forward(xte[i:i+500], fhe="disable") for i in range(0, 10000, 500)]); qp = qs.argmax(1)
res["clear_quant_acc_10k"] = float(np.mean(qp == yte)); res["clear_s"] = time.perf_counter() - t0
if a.brevitas_qat:
    res["clear_vs_trained_module_maxabs"] = float(np.abs(qs - st_).max()); res["clear_vs_trained_module_argmax_differ"] = int((qp != st_.argmax(1)).sum())
    print(f"[clear] vs the trained brevitas module: max |diff| {res['clear_vs_trained_module_maxabs']:.3g}, argmax differs on {res['clear_vs_trained_module_argmax_differ']}", flush=True)
ns = a.n_sim
res["clear_quant_acc_first_nsim"] = float(np.mean(qp[:ns] == yte[:ns]))
print(f"[clear] {res['clear_quant_acc_10k']:.4f} ({res['clear_s']:.1f}s)", flush=True)
t0 = time.perf_counter()
sp = np.concatenate([qm.forward(xte[i:min(i+100, ns)], fhe="simulate").argmax(1) for i in range(0, ns, 100)])
res["sim_acc_first_nsim"] = float(np.mean(sp == yte[:ns])); res["sim_vs_clear_agree"] = float(np.mean(sp == qp[:ns]))
res["sim_s"] = time.perf_counter() - t0; res["n_sim"] = ns
print(f"[sim] {res['sim_acc_first_nsim']:.4f} on {ns} agree-with-clear {res['sim_vs_clear_agree']:.4f} ({res['sim_s']:.1f}s)", flush=True)

os.makedirs("/tmp/concrete-onnx", exist_ok=True); work = f"/tmp/concrete-onnx/work-{a.name}"; shutil.rmtree(work, ignore_errors=True)
FHEModelDev(f"{work}/model", qm).save()
client = FHEModelClient(f"{work}/model", key_dir=f"{work}/keys"); server = FHEModelServer(f"{work}/model"); server.load()
t0 = time.perf_counter(); client.generate_private_and_evaluation_keys(force=True); res["keygen_s"] = time.perf_counter() - t0
ek = client.get_serialized_evaluation_keys(); res["eval_key_bytes"] = len(ek)
ekd = fhe.EvaluationKeys.deserialize(ek)
print(f"[keys] keygen {res['keygen_s']:.1f}s eval keys {len(ek)/1e6:.2f} MB", flush=True)
E, S, D, IB, OB, FP = [], [], [], [], [], []
for i in range(a.n_fhe):
    t0 = time.perf_counter(); bi = client.quantize_encrypt_serialize(xte[i:i+1]); t1 = time.perf_counter()
    bo = server.run(bi, ekd); t2 = time.perf_counter()
    y = client.deserialize_decrypt_dequantize(bo); t3 = time.perf_counter()
    y = y[0] if isinstance(y, tuple) else y
    yc = qm.forward(xte[i:i+1], fhe="disable")
    FP.append(int(np.argmax(y))); E.append(t1-t0); S.append(t2-t1); D.append(t3-t2); IB.append(len(bi)); OB.append(len(bo))
    exact = bool(np.allclose(np.asarray(y).reshape(-1), np.asarray(yc).reshape(-1)))
    res.setdefault("fhe_minus_clear_maxabs", []).append(float(np.max(np.abs(np.asarray(y).reshape(-1) - np.asarray(yc).reshape(-1)))))
    res.setdefault("fhe_scores", []).append(np.asarray(y).reshape(-1).tolist()); res.setdefault("clear_scores", []).append(np.asarray(yc).reshape(-1).tolist())
    res.setdefault("fhe_scores_equal_clear", []).append(exact)
    print(f"[fhe] {i} label {yte[i]} fhe {FP[-1]} clear {qp[i]} sim {sp[i]} scores==clear {exact} maxdiff {res['fhe_minus_clear_maxabs'][-1]:.4g} enc {E[-1]*1e3:.1f}ms server {S[-1]:.1f}s dec {D[-1]*1e3:.2f}ms up {IB[-1]} down {OB[-1]}", flush=True)
    if S[-1] > a.fhe_budget: print("[fhe] over budget, stopping", flush=True); break
n = len(FP); med = statistics.median
res.update({"n_fhe": n, "fhe_pred": FP, "clear_pred": [int(v) for v in qp[:n]], "labels": [int(v) for v in yte[:n]],
            "fhe_pred_equal_clear": FP == [int(v) for v in qp[:n]], "server_s": S, "server_s_median": med(S),
            "enc_s_median": med(E), "dec_s_median": med(D), "upload_bytes": IB, "download_bytes": OB})
print("RESULT " + json.dumps(res), flush=True)
json.dump(res, open(f"/tmp/concrete-onnx/{a.name}.json", "w"), indent=1)
