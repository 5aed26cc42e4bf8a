"""Per-bootstrap cost of Concrete's runtime on this machine, next to `obscura bench tfhe`.

Compiles a 4-bit table lookup over a vector of `--count` encrypted values with concrete-python
(Zama's compiler; its CPU runtime bootstraps with the same FFT-based CGGI algorithm as tfhe-rs),
prints the parameters its optimizer chose (polynomial size, LWE dimensions, levels), checks the
decrypted results, and times `run` on one thread and with loop parallelism on all cores.

Compare `per_pbs_ms` with `pbs_4bit_batched_ms` and `pbs_4bit_per_second_all_cores` of
`obscura bench tfhe`, scaling by the LWE dimension (the blind rotation does one external product
per small-key coefficient; int4-128 has n = 918).

Needs the Concrete ML peer's virtual environment (`../shared/peers/concrete-ml/`):
    ~/.venvs/peers-concrete/bin/python scripts/concrete_pbs.py [--count 128] [--runs 5]
"""
import argparse
import time

import numpy as np
from concrete import fhe


def measure(bits: int, count: int, runs: int, parallel: bool) -> dict:
    modulus = 1 << bits
    table = fhe.LookupTable([(7 * i + 3) % modulus for i in range(modulus)])

    @fhe.compiler({"x": "encrypted"})
    def lookup(x):
        return table[x]

    rng = np.random.default_rng(1)
    inputset = [rng.integers(0, modulus, size=(count,)) for _ in range(20)]
    configuration = fhe.Configuration(p_error=2**-40, dataflow_parallelize=False, loop_parallelize=parallel)
    circuit = lookup.compile(inputset, configuration=configuration)
    circuit.keygen()
    x = rng.integers(0, modulus, size=(count,))
    encrypted = circuit.encrypt(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = circuit.run(encrypted)
        times.append(time.perf_counter() - start)
    if not (circuit.decrypt(result) == (7 * x + 3) % modulus).all():
        raise SystemExit("Concrete returned a wrong table lookup")
    median = sorted(times)[len(times) // 2]
    stats = circuit.statistics
    if stats["programmable_bootstrap_count"] != count:
        raise SystemExit(f"expected {count} bootstraps, Concrete compiled {stats['programmable_bootstrap_count']}")
    return {
        "parallel": parallel,
        "median_s": median,
        "per_pbs_ms": median / count * 1e3,
        "bootstrap_key_bytes": stats["size_of_bootstrap_keys"],
        "keyswitch_key_bytes": stats["size_of_keyswitch_keys"],
        "parameters": describe(circuit),
    }


def describe(circuit) -> str:
    """The bootstrapping and key-switching keys' shapes, as the optimizer chose them."""
    keyset = circuit.client.specs.program_info.get_keyset_info()
    parts = [f"bsk N={b.polynomial_size()} k={b.glwe_dimension()} n={b.input_lwe_dimension()} "
             f"levels={b.level()} base_log={b.base_log()}" for b in keyset.bootstrap_keys()]
    parts += [f"ksk levels={k.level()} base_log={k.base_log()}" for k in keyset.keyswitch_keys()]
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", type=int, default=4)
    parser.add_argument("--count", type=int, default=128)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    figures = [measure(args.bits, args.count, args.runs, parallel) for parallel in (False, True)]
    for f in figures:
        label = "all_cores" if f["parallel"] else "one_thread"
        print(f"concrete_pbs_{args.bits}bit_{label}_ms: {f['per_pbs_ms']:.2f} ms")
    print(f"concrete_bootstrapping_key_bytes: {figures[0]['bootstrap_key_bytes']} bytes")
    print(f"concrete_keyswitching_key_bytes: {figures[0]['keyswitch_key_bytes']} bytes")
    print(f"concrete_parameters: {figures[0]['parameters']}")


if __name__ == "__main__":
    main()
