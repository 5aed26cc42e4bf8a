import TFHE

/// Circuits whose independent gates run on all cores: one ``CircuitEvaluator`` per worker,
/// each bit of an output computed where a worker is free. The results are the same bits the
/// sequential circuits produce; only the wall-clock time differs.
public struct ParallelCircuits: Sendable {
    /// The evaluation key the workers share.
    public let key: EvaluationKey

    /// Parallel circuits on `key`.
    public init(key: EvaluationKey) { self.key = key }

    /// `gate(i)` for every bit position i, spread over the cores; returns the bits and the
    /// bootstraps they cost.
    public func bits(count: Int, _ gate: @Sendable (CircuitEvaluator, Int) -> HybridBit) -> (bits: [HybridBit], bootstraps: Int) {
        let results: [(HybridBit, Int)] = key.parallelMap(count: count) { evaluator, i in
            let before = evaluator.bootstrapCount
            let bit = gate(CircuitEvaluator(gates: evaluator), i)
            return (bit, evaluator.bootstrapCount - before)
        }
        return (results.map(\.0), results.reduce(0) { $0 + $1.1 })
    }

    /// max(x, 0): the n-1 ANDs with ¬sign in parallel (the fast design).
    public func relu(_ x: EncryptedInteger) -> (value: EncryptedInteger, bootstraps: Int) {
        let (bits, cost) = bits(count: x.width - 1) { circuit, i in circuit.and(circuit.not(x.signBit), x.bits[i]) }
        return (EncryptedInteger(bits: bits + [.plain(false)]), cost)
    }

    /// max(x, y): the majority-chain comparison (inherently sequential) on one core, then the
    /// n MUXes in parallel.
    public func maximum(_ x: EncryptedInteger, _ y: EncryptedInteger) -> (value: EncryptedInteger, bootstraps: Int) {
        let comparison = CircuitEvaluator(key: key)
        let t = comparison.greaterThan(x, y, method: .fast)
        let (bits, cost) = bits(count: x.width) { circuit, i in circuit.mux(t, x.bits[i], y.bits[i]) }
        return (EncryptedInteger(bits: bits), cost + comparison.bootstrapCount)
    }
}
