import ObscuraMath

/// The test polynomial of a programmable bootstrap: after blind rotation by a phase index p,
/// coefficient 0 of X^-p·TV is TV[p] for p < N and -TV[p-N] for N ≤ p < 2N.
public struct LookupTable: Sendable, Hashable {
    /// TV, N torus coefficients.
    public let polynomial: [UInt64]

    /// A table for messages m ∈ [0, P) encoded as m·2^63/P (one padding bit), returning the
    /// torus value `output(m)`.
    ///
    /// Box m covers the phase indices [m·N/P - N/(2P), m·N/P + N/(2P)), centred on the
    /// message so that noise of either sign decodes correctly. The half box below index 0
    /// wraps to the top of the negacyclic ring and is stored negated.
    public init(polynomialSize n: Int, inputModulus p: Int, output: (Int) -> UInt64) {
        precondition(p >= 2 && n % p == 0 && (n / p) % 2 == 0, "need N/P even")
        let box = n / p
        let values = (0..<p).map(output)
        polynomial = (0..<n).map { j in
            let m = (j + box / 2) / box
            return m < p ? values[m] : 0 &- values[0]
        }
    }

    /// A table whose every coefficient is `value`: it returns +value on a phase in [0, 1/2) and
    /// -value on [1/2, 1), the sign of the whole torus with no padding bit (gate bootstrapping
    /// and sign activations).
    public init(polynomialSize n: Int, constant value: UInt64) {
        polynomial = [UInt64](repeating: value, count: n)
    }

    /// f: Z_P → Z_P on integers of the parameter set, output re-encoded with the same Δ.
    public init(parameters: TFHEParameters, function f: (Int) -> Int) {
        let p = parameters.plaintextModulus
        self.init(polynomialSize: parameters.polynomialSize, inputModulus: p) { m in
            let value = ((f(m) % p) + p) % p
            return UInt64(value) &* parameters.delta
        }
    }
}
