import ObscuraMath

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Predicted noise variances (squared fractions of the torus) of Obscura's implementation of a
/// parameter set, and the failure probabilities they imply. Tests measure them.
///
/// The formulas are the standard ones for CGGI bootstrapping with binary keys (the noise
/// analyses of Chillotti et al. and of tfhe-rs's `noise_formulas`), written for this
/// implementation's choices: balanced signed digits, the centred-mean modulus switch, a
/// key-switching key rounded to 32 bits and a double-precision FFT, whose error is the one
/// term fitted to measurement (``fourierPhaseVariance``).
///
/// A key's Hamming weights enter several terms. Plans use their expectations (half the bits);
/// ``init(_:secretKey:)`` uses one key's own, so that tests can compare a measurement with a
/// key to the prediction for that key rather than for the average key.
public struct NoiseModel: Sendable {
    /// The parameter set.
    public let parameters: TFHEParameters
    /// The number of ones of the small key s (expected: n/2).
    let smallKeyWeight: Double
    /// The number of ones of the big key (expected: k·N/2).
    let bigKeyWeight: Double
    /// The number of groups of g small-key bits that are not all 0 (multi-bit blind rotation;
    /// expected: (n/g)·(1 − 2^-g); for g = 1 the small key's weight).
    let nonzeroGroups: Double

    /// A model for `parameters` with keys of expected weight.
    public init(_ parameters: TFHEParameters) {
        self.parameters = parameters
        smallKeyWeight = Double(parameters.lweDimension) / 2
        bigKeyWeight = Double(parameters.bigLweDimension) / 2
        let g = parameters.groupingFactor
        nonzeroGroups = Double(parameters.lweDimension / g) * (1 - Double.pow2(-g))
    }

    /// A model for one secret key, with its own Hamming weights.
    init(_ parameters: TFHEParameters, secretKey: SecretKey) {
        self.parameters = parameters
        smallKeyWeight = Double(secretKey.smallKey.reduce(0, +))
        bigKeyWeight = Double(secretKey.bigKey.reduce(0, +))
        let g = parameters.groupingFactor
        nonzeroGroups = Double((0..<(parameters.lweDimension / g)).count { group in
            (0..<g).contains { secretKey.smallKey[group * g + $0] == 1 }
        })
    }

    /// Variance of a fresh encryption under the big key.
    public var freshVariance: Double { parameters.glweNoise.torusVariance }

    /// E[d²] for digits uniform on [-B/2, B/2).
    static func digitSecondMoment(baseLog: Int) -> Double {
        let base = Double.pow2(baseLog)
        return (base * base + 2) / 12
    }

    /// Variance that the packing key switch (``EvaluationKey/pack(_:)``) adds to each packed
    /// value's phase, with R = k·N·l_pk rows of the packing key and digits of base B = 2^β:
    /// - the key's noise times the digits: each coefficient of D(X)·E(X) sums N' of them, so
    ///   R·N'·E[d²]·σ²_GLWE;
    /// - the gadget's rounding of the input masks, times the big key: w·2^(-2βl)/12;
    /// - the FFT's error, by the formula of ``fourierPhaseVariance`` for R digit polynomials of
    ///   size N' against the key (the same kind of sum as an external product's, R rows long).
    public var packingKeySwitchVariance: Double {
        let shape = parameters.packing
        let rows = Double(shape.rows), beta = shape.decomposition.baseLog, levels = shape.decomposition.levels
        let base = Double.pow2(beta), size = Double(shape.polynomialSize)
        let keyNoise = rows * size * Self.digitSecondMoment(baseLog: beta) * parameters.glweNoise.torusVariance
        let rounding = bigKeyWeight * Double.pow2(-2 * beta * levels) / 12
        let fourier = Self.fourierConstant * (1 + bigKeyWeight) * rows * base * base * size * log2(size) * Double.pow2(-106)
        return keyNoise + rounding + fourier
    }

    /// Variance that the double-precision FFT adds to the phase of an external product's
    /// output. The exact product's coefficients are sums of (k+1)·l·N products of a digit
    /// (size B) and a key word (size 2^64); carried in 53-bit mantissas through log2(N)
    /// butterfly stages, each output word loses about 2^-53 of that size per stage, and the k
    /// mask polynomials reach the phase through the GLWE key: c·(1 + w)·(k+1)·l·B²·N·log2(N)·2^-106
    /// of the torus, w the GLWE key's weight. The constant c = 2^-6.30 is fitted by
    /// `FourierErrorTests`, which measures this phase error against exact integer products
    /// on the three secure sets and requires each within [3/4, 1.1] of the formula.
    public var fourierPhaseVariance: Double {
        let p = parameters
        let base = Double.pow2(p.bootstrapDecomposition.baseLog), n = Double(p.polynomialSize)
        return Self.fourierConstant * (1 + bigKeyWeight) * Double((p.glweDimension + 1) * p.bootstrapDecomposition.levels)
            * base * base * n * log2(n) * Double.pow2(-106)
    }

    /// c in ``fourierPhaseVariance``.
    static let fourierConstant = exp2(-6.30)

    /// Variance of a bootstrap's output (after sample extraction).
    ///
    /// Classic: n external products, each adding the key noise times the digits and the FFT's
    /// error; plus, for each key bit that is 1, the decomposition's rounding error times the GLWE
    /// key and the body.
    ///
    /// Multi-bit (g > 1): n/g external products with the combined GGSW Σ_β (X^(e_β) − 1)·G_β.
    /// Its noise Σ_β (X^(e_β) − 1)·E_β has 2·(2^g − 1) times a GGSW's variance per coefficient
    /// (two independent terms per pattern, e_β ≠ 0 but for a chance of 1/2N), and the FFT's
    /// error grows with the combined key's size in the same ratio; the decomposition of acc
    /// (not of a difference) rounds with an error that only the one pattern equal to the key's
    /// bits multiplies, by X^(e_s) − 1: twice the classic term, once per group not all 0.
    public var bootstrapOutputVariance: Double {
        let p = parameters
        let n = Double(p.polynomialSize), k = Double(p.glweDimension)
        let levels = Double(p.bootstrapDecomposition.levels)
        let beta = p.bootstrapDecomposition.baseLog
        let keyTerm = (k + 1) * levels * n * Self.digitSecondMoment(baseLog: beta) * p.glweNoise.torusVariance
        let roundingVariance = Double.pow2(-2 * beta * p.bootstrapDecomposition.levels) / 12
        let g = p.groupingFactor
        if g == 1 {
            return Double(p.lweDimension) * (keyTerm + fourierPhaseVariance) + smallKeyWeight * (1 + bigKeyWeight) * roundingVariance
        }
        let combination = 2 * Double((1 << g) - 1)
        return Double(p.lweDimension / g) * combination * (keyTerm + fourierPhaseVariance)
            + nonzeroGroups * 2 * (1 + bigKeyWeight) * roundingVariance
    }

    /// The largest correlation between the output noises of two readings (coefficients) of one
    /// blind rotation that plans allow for. The key-noise part of the output is uncorrelated
    /// across coefficients (the digits are independent and centred), but the decomposition's
    /// rounding error is multiplied by the GLWE key, whose bits have mean 1/2: two coefficients
    /// of that product share about half their variance (less where the negacyclic wrap flips
    /// signs). So the correlation stays below 1/2; `NoiseTests` measures it (about 0.15-0.2
    /// at lags of 256-512 on int4-128) over 1,200 multi-value bootstraps.
    public static let multiValueCorrelationBound = 0.5

    /// The factor by which a weighted sum of L readings of one blind rotation can exceed the
    /// variance of the same sum of independent bootstrap outputs, when every pairwise
    /// correlation is at most ρ = ``multiValueCorrelationBound``: Var(Σ a_k X_k) ≤
    /// σ²·(Σ a_k² + ρ·(Σ|a_k|)²) ≤ σ²·Σ a_k²·(1 + ρ·(L − 1)), by Cauchy–Schwarz.
    public static func multiValueVarianceFactor(readings: Int) -> Double {
        1 + multiValueCorrelationBound * Double(max(0, readings - 1))
    }

    /// Variance added by key switching from the big key to the small key, at 32-bit precision:
    /// the key-switching key's noise times the digits, the decomposition's rounding times the
    /// big key, and the rounding of key and input to 32 bits.
    public var keySwitchVariance: Double {
        let p = parameters
        let bigDimension = Double(p.bigLweDimension)
        let levels = Double(p.keySwitchDecomposition.levels)
        let beta = p.keySwitchDecomposition.baseLog
        let digitsSquared = bigDimension * levels * Self.digitSecondMoment(baseLog: beta)
        let keyNoise = digitsSquared * p.lweNoise.torusVariance
        let rounding = bigKeyWeight * Double.pow2(-2 * beta * p.keySwitchDecomposition.levels) / 12
        let precision32 = (digitsSquared * (1 + smallKeyWeight) + 2) * Double.pow2(-64) / 12
        return keyNoise + rounding + precision32
    }

    /// Variance added by the centred-mean modulus switch to Z_2N: the mask's rounding errors,
    /// each uniform of variance 1/(48N²), weighted by (s_i - 1/2)², plus the body's.
    public var modulusSwitchVariance: Double {
        let n = Double(parameters.polynomialSize)
        return (Double(parameters.lweDimension) / 4 + 1) / (48 * n * n)
    }

    /// Variance of the phase that blind rotation sees, for an input that is a combination of
    /// bootstrap outputs with 2-norm `inputNorm`.
    public func bootstrapInputVariance(inputNorm: Double) -> Double {
        inputNorm * inputNorm * bootstrapOutputVariance + keySwitchVariance + modulusSwitchVariance
    }

    /// Variance of the phase that blind rotation sees for a combination, of 2-norm `inputNorm`,
    /// of fresh encryptions under the small key (no key switch): their noise, their rounding to
    /// 32 bits (weighted by the small key) and the modulus switch.
    public func smallKeyInputVariance(inputNorm: Double) -> Double {
        inputNorm * inputNorm * parameters.lweNoise.torusVariance + (smallKeyWeight + 1) * Double.pow2(-64) / 12
            + modulusSwitchVariance
    }

    /// log2 of the probability that a bootstrap of a combination, of 2-norm `inputNorm`, of fresh
    /// small-key encryptions decodes into the wrong box, for a margin (half box width).
    public func smallKeyInputFailureLog2(inputNorm: Double, margin: Double) -> Double {
        Self.log2Erfc(margin / (smallKeyInputVariance(inputNorm: inputNorm) * 2).squareRoot())
    }

    /// log2 of the probability that a bootstrap decodes into the wrong box, for a margin (half
    /// box width, as a fraction of the torus) and an input noise 2-norm.
    public func failureLog2(inputNorm: Double, margin: Double) -> Double {
        let sigma = bootstrapInputVariance(inputNorm: inputNorm).squareRoot()
        return Self.log2Erfc(margin / (sigma * 2.0.squareRoot()))
    }

    /// log2 of the failure probability of an integer bootstrap at the set's noise budget.
    public var integerFailureLog2: Double {
        failureLog2(inputNorm: parameters.maxNoiseNorm, margin: 1 / Double(4 * parameters.plaintextModulus))
    }

    /// log2 of the failure probability of the worst boolean gate: an AND-like gate (margin 1/8)
    /// on two MUX outputs, each the sum of two fresh bootstraps (2-norm 2).
    public var gateFailureLog2: Double {
        failureLog2(inputNorm: 2, margin: 1.0 / 8)
    }

    /// log2 of the failure probability of a full adder's threshold sum bit,
    /// sign(a + b + c - 2·carry), on inputs that are themselves MUX outputs (2-norm √(2+2+2+4)).
    public var fullAdderSumFailureLog2: Double {
        failureLog2(inputNorm: 10.0.squareRoot(), margin: 1.0 / 8)
    }

    /// log2(erfc(x)), with the asymptotic series where erfc underflows.
    public static func log2Erfc(_ x: Double) -> Double {
        if x < 25 { return log2(erfc(x)) }
        let series = 1 - 1 / (2 * x * x) + 3 / (4 * x * x * x * x)
        return (-x * x - log(x * Double.pi.squareRoot()) + log(series)) / log(2.0)
    }
}
