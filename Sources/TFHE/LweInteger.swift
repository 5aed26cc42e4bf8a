import ObscuraMath

/// A small integer encrypted as v·Δ (Δ = 2^63/P) under the big key, with the bookkeeping
/// that keeps programmable bootstrapping within its guarantees: the range of values the
/// ciphertext may hold, and the 2-norm of its noise in units of a fresh ciphertext's.
///
/// Linear operations are free and update both. A bootstrap checks that the range fits in the
/// P slots below the padding bit and that the noise is within the parameter set's budget, then
/// evaluates any table f: Z → Z on the value and returns a fresh ciphertext (norm 1).
public struct LweInteger: Sendable {
    /// The ciphertext.
    public var ciphertext: LweCiphertext
    /// The smallest value the ciphertext may hold.
    public private(set) var lowerBound: Int
    /// The largest value the ciphertext may hold.
    public private(set) var upperBound: Int
    /// Σ w_i² over the fresh ciphertexts this one combines (1 when fresh).
    public private(set) var noiseNormSquared: Double

    /// Wraps a ciphertext whose value is known to lie in `range`.
    public init(ciphertext: LweCiphertext, range: ClosedRange<Int>, noiseNormSquared: Double = 1) {
        self.ciphertext = ciphertext
        lowerBound = range.lowerBound
        upperBound = range.upperBound
        self.noiseNormSquared = noiseNormSquared
    }

    /// The possible values.
    public var range: ClosedRange<Int> { lowerBound...upperBound }
    /// The noise 2-norm.
    public var noiseNorm: Double { noiseNormSquared.squareRoot() }

    /// self + other.
    public static func + (lhs: LweInteger, rhs: LweInteger) -> LweInteger {
        var result = lhs
        result.ciphertext.add(rhs.ciphertext)
        result.lowerBound += rhs.lowerBound
        result.upperBound += rhs.upperBound
        result.noiseNormSquared += rhs.noiseNormSquared
        return result
    }

    /// self - other.
    public static func - (lhs: LweInteger, rhs: LweInteger) -> LweInteger {
        var result = lhs
        result.ciphertext.subtract(rhs.ciphertext)
        result.lowerBound -= rhs.upperBound
        result.upperBound -= rhs.lowerBound
        result.noiseNormSquared += rhs.noiseNormSquared
        return result
    }

    /// factor · self, with a public integer factor.
    public static func * (factor: Int, value: LweInteger) -> LweInteger {
        var result = value
        result.ciphertext.multiply(by: Int64(factor))
        let a = value.lowerBound * factor, b = value.upperBound * factor
        result.lowerBound = Swift.min(a, b)
        result.upperBound = Swift.max(a, b)
        result.noiseNormSquared *= Double(factor * factor)
        return result
    }

    /// self + constant, with a public integer constant encoded with the scale `delta`.
    public func adding(_ constant: Int, delta: UInt64) -> LweInteger {
        var result = self
        result.ciphertext.addToBody(UInt64(bitPattern: Int64(constant)) &* delta)
        result.lowerBound += constant
        result.upperBound += constant
        return result
    }
}

extension Encryptor {
    /// Encrypts v as v·Δ. `range` is what the server may assume about the value: the whole
    /// message space [0, P) unless the caller declares a narrower one.
    public func encryptInteger(_ value: Int, range: ClosedRange<Int>? = nil) -> LweInteger {
        let p = parameters
        let declared = range ?? 0...(p.plaintextModulus - 1)
        precondition(declared.contains(value), "value outside its declared range")
        let c = encrypt(plaintext: UInt64(bitPattern: Int64(value)) &* p.delta)
        return LweInteger(ciphertext: c, range: declared)
    }

    /// Decrypts an integer: the phase divided by Δ and rounded, read as signed.
    public func decrypt(_ integer: LweInteger) -> Int {
        Int(decryptSigned(integer.ciphertext, delta: parameters.delta))
    }
}

extension LweInteger {
    /// The trivial (noiseless) encryption of a public integer.
    public static func constant(_ value: Int, parameters: TFHEParameters) -> LweInteger {
        LweInteger(ciphertext: .trivial(dimension: parameters.bigLweDimension,
                                        body: UInt64(bitPattern: Int64(value)) &* parameters.delta),
                   range: value...value, noiseNormSquared: 0)
    }
}

extension Evaluator {
    /// f applied to the encrypted value by one programmable bootstrap.
    ///
    /// The value's range may start below zero: it is shifted into [0, P) by a free constant
    /// addition first, so that signed functions (ReLU, sign, max via a - b) need no care from
    /// the caller. Throws when the range is wider than P or the noise above the budget.
    public func apply(_ f: (Int) -> Int, to input: LweInteger) throws(TFHEError) -> LweInteger {
        let p = parameters
        guard input.upperBound - input.lowerBound < p.plaintextModulus else {
            throw .valueRangeExceedsMessageSpace(lower: input.lowerBound, upper: input.upperBound,
                                                 plaintextModulus: p.plaintextModulus)
        }
        guard input.noiseNorm <= p.maxNoiseNorm else {
            throw .noiseBudgetExceeded(norm: input.noiseNorm, budget: p.maxNoiseNorm)
        }
        let offset = input.lowerBound, width = input.upperBound - input.lowerBound
        let shifted = input.adding(-offset, delta: p.delta)
        let outputs = (0...width).map { f($0 + offset) }
        // Slots beyond the range are unreachable; they repeat the last value so that f is only
        // ever called on values the input may hold.
        let table = LookupTable(polynomialSize: p.polynomialSize, inputModulus: p.plaintextModulus) { m in
            UInt64(bitPattern: Int64(outputs[Swift.min(m, width)])) &* p.delta
        }
        let result = bootstrap(shifted.ciphertext, table: table)
        return LweInteger(ciphertext: result, range: outputs.min()!...outputs.max()!)
    }
}

extension EvaluationKey {
    /// f applied to every input by programmable bootstrapping, on all cores.
    public func apply(_ f: @Sendable (Int) -> Int, toEach inputs: [LweInteger]) throws(TFHEError) -> [LweInteger] {
        let results: [Result<LweInteger, TFHEError>] = parallelMap(count: inputs.count) { evaluator, i in
            do throws(TFHEError) { return .success(try evaluator.apply(f, to: inputs[i])) } catch { return .failure(error) }
        }
        return try results.map { result throws(TFHEError) in try result.get() }
    }
}
