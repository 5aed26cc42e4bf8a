import ObscuraMath

/// A complete TFHE parameter set: dimensions, noise, decompositions and the message space.
///
/// Every set Obscura ships is a published tfhe-rs set with at least 128-bit security and
/// TUniform noise (exact integer sampling, no floating point); the security figure below is the
/// source's own lattice-estimator result, and ``sourceFailureLog2`` is the source's failure
/// probability for the centred-mean modulus switch, the variant Obscura runs.
/// Obscura's own prediction for its implementation (centred-mean modulus switch, 32-bit
/// key-switching key) is ``NoiseModel/failureLog2(inputNorm:margin:)``, checked by tests.
/// All sets run in KS-PBS order: ciphertexts live under the big key of dimension k·N and each
/// bootstrap key-switches down to dimension n first.
public struct TFHEParameters: Sendable, Hashable, CustomStringConvertible {
    /// The identifier written into every serialized object made under this set.
    public let id: UInt16
    /// A short name for the command line and logs.
    public let name: String
    /// Where the numbers come from.
    public let source: String
    /// The source's security estimate in bits.
    public let securityBits: Int
    /// log2 of the source's stated failure probability per bootstrap.
    public let sourceFailureLog2: Double
    /// n, the dimension of the small LWE key that blind rotation runs on.
    public let lweDimension: Int
    /// k, the number of mask polynomials of a GLWE ciphertext.
    public let glweDimension: Int
    /// N, the size of each polynomial.
    public let polynomialSize: Int
    /// The noise of key-switching-key samples (under the small key).
    public let lweNoise: NoiseDistribution
    /// The noise of bootstrapping-key samples and of fresh encryptions under the big key.
    public let glweNoise: NoiseDistribution
    /// The gadget of the bootstrapping key (base, levels).
    public let bootstrapDecomposition: GadgetDecomposition
    /// The gadget of the key-switching key.
    public let keySwitchDecomposition: GadgetDecomposition
    /// P, the size of the cleartext space below the padding bit (message and carry together):
    /// integers are encoded as m·Δ with Δ = 2^63 / P.
    public let plaintextModulus: Int
    /// The largest 2-norm of a linear combination of fresh ciphertexts that a bootstrap of
    /// this set accepts at its stated failure probability (tfhe-rs's `MaxNoiseLevel`).
    public let maxNoiseNorm: Double
    /// g, the number of small-key bits that one step of blind rotation consumes: 1 for the
    /// classic CMux loop (n steps), 2 to 4 for multi-bit blind rotation (n/g steps, each with
    /// 2^g − 1 key GGSWs; ``FourierMultiBitGroup``).
    public let groupingFactor: Int
    /// True only for the small sets that exist to make unit tests fast. Never a default.
    public let isInsecureTestOnly: Bool

    /// k·N, the dimension of the big LWE key that sample extraction produces.
    public var bigLweDimension: Int { glweDimension * polynomialSize }
    /// Δ = 2^63 / P: the scale of an integer message, one padding bit above it.
    public var delta: UInt64 { (UInt64(1) << 63) / UInt64(plaintextModulus) }
    /// The GGSW ciphertexts of the bootstrapping key: n for the classic method, one per
    /// nonzero pattern of each group of g key bits for multi-bit blind rotation.
    public var bootstrapKeyGgswCount: Int { lweDimension / groupingFactor * ((1 << groupingFactor) - 1) }
    /// The blind rotation's method, for reports: "classic" or "multi-bit g".
    public var blindRotationMethod: String { groupingFactor == 1 ? "classic" : "multi-bit \(groupingFactor)" }

    public var description: String {
        "\(name) (n=\(lweDimension), k=\(glweDimension), N=\(polynomialSize), \(blindRotationMethod), \(securityBits)-bit, \(source))"
    }

    /// 2-bit integers (p = 4), and the boolean gates. tfhe-rs
    /// `V1_4_PARAM_MESSAGE_1_CARRY_1_KS_PBS_TUNIFORM_2M128`
    /// (tfhe/src/shortint/parameters/v1_4/classic/tuniform/p_fail_2_minus_128/ks_pbs.rs):
    /// 128-bit security, p-fail 2^-144.3 at 2-norm 3 with the centred-mean modulus switch that
    /// Obscura runs. Gates put ±1/8 on the whole torus: twice this set's integer margin of
    /// 1/16, on inputs of 2-norm at most √10 (a full adder's threshold sum), which
    /// ``NoiseModel/gateFailureLog2`` and ``NoiseModel/fullAdderSumFailureLog2`` bound.
    public static let integer2Bit128 = TFHEParameters(
        id: 4, name: "int2-128",
        source: "tfhe-rs V1_4_PARAM_MESSAGE_1_CARRY_1_KS_PBS_TUNIFORM_2M128",
        securityBits: 128, sourceFailureLog2: -144.322,
        lweDimension: 879, glweDimension: 4, polynomialSize: 512,
        lweNoise: .tUniform(log2Bound: 46), glweNoise: .tUniform(log2Bound: 17),
        bootstrapDecomposition: GadgetDecomposition(baseLog: 23, levels: 1),
        keySwitchDecomposition: GadgetDecomposition(baseLog: 5, levels: 3),
        plaintextModulus: 4, maxNoiseNorm: 3, groupingFactor: 1, isInsecureTestOnly: false)

    /// 4-bit integers (p = 16). tfhe-rs `V1_4_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128`
    /// (same file), tfhe-rs's default set: 128-bit security, p-fail 2^-129.6 at 2-norm 5.
    public static let integer4Bit128 = TFHEParameters(
        id: 2, name: "int4-128",
        source: "tfhe-rs V1_4_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128",
        securityBits: 128, sourceFailureLog2: -129.581,
        lweDimension: 918, glweDimension: 1, polynomialSize: 2048,
        lweNoise: .tUniform(log2Bound: 45), glweNoise: .tUniform(log2Bound: 17),
        bootstrapDecomposition: GadgetDecomposition(baseLog: 23, levels: 1),
        keySwitchDecomposition: GadgetDecomposition(baseLog: 4, levels: 4),
        plaintextModulus: 16, maxNoiseNorm: 5, groupingFactor: 1, isInsecureTestOnly: false)

    /// 6-bit integers (p = 64). tfhe-rs `V1_4_PARAM_MESSAGE_3_CARRY_3_KS_PBS_TUNIFORM_2M128`
    /// (same file): 128-bit security, p-fail 2^-129.0 at 2-norm 9.
    public static let integer6Bit128 = TFHEParameters(
        id: 3, name: "int6-128",
        source: "tfhe-rs V1_4_PARAM_MESSAGE_3_CARRY_3_KS_PBS_TUNIFORM_2M128",
        securityBits: 128, sourceFailureLog2: -128.992,
        lweDimension: 1077, glweDimension: 1, polynomialSize: 8192,
        lweNoise: .tUniform(log2Bound: 41), glweNoise: .tUniform(log2Bound: 3),
        bootstrapDecomposition: GadgetDecomposition(baseLog: 15, levels: 2),
        keySwitchDecomposition: GadgetDecomposition(baseLog: 4, levels: 5),
        plaintextModulus: 64, maxNoiseNorm: 9, groupingFactor: 1, isInsecureTestOnly: false)

    /// 4-bit integers with multi-bit blind rotation, grouping factor 2. tfhe-rs
    /// `V1_4_PARAM_MULTI_BIT_GROUP_2_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128` (an alias of
    /// V1_1's; tfhe/src/shortint/parameters/v1_1/multi_bit/tuniform/p_fail_2_minus_128/ks_pbs.rs):
    /// 128-bit security, p-fail 2^-140.3 at 2-norm 5 with the plain modulus switch (tfhe-rs's
    /// multi-bit sets have no drift mitigation); Obscura's centred-mean switch only lowers it.
    public static let integer4BitMultiBit2 = TFHEParameters(
        id: 5, name: "int4-128-mb2",
        source: "tfhe-rs V1_4_PARAM_MULTI_BIT_GROUP_2_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128",
        securityBits: 128, sourceFailureLog2: -140.341,
        lweDimension: 918, glweDimension: 1, polynomialSize: 4096,
        lweNoise: .tUniform(log2Bound: 45), glweNoise: .tUniform(log2Bound: 3),
        bootstrapDecomposition: GadgetDecomposition(baseLog: 21, levels: 1),
        keySwitchDecomposition: GadgetDecomposition(baseLog: 3, levels: 5),
        plaintextModulus: 16, maxNoiseNorm: 5, groupingFactor: 2, isInsecureTestOnly: false)

    /// 4-bit integers, multi-bit grouping factor 3. tfhe-rs
    /// `V1_4_PARAM_MULTI_BIT_GROUP_3_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128` (same file):
    /// 128-bit security, p-fail 2^-128.2 at 2-norm 5 (plain modulus switch).
    public static let integer4BitMultiBit3 = TFHEParameters(
        id: 6, name: "int4-128-mb3",
        source: "tfhe-rs V1_4_PARAM_MULTI_BIT_GROUP_3_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128",
        securityBits: 128, sourceFailureLog2: -128.235,
        lweDimension: 918, glweDimension: 1, polynomialSize: 2048,
        lweNoise: .tUniform(log2Bound: 45), glweNoise: .tUniform(log2Bound: 17),
        bootstrapDecomposition: GadgetDecomposition(baseLog: 15, levels: 2),
        keySwitchDecomposition: GadgetDecomposition(baseLog: 3, levels: 6),
        plaintextModulus: 16, maxNoiseNorm: 5, groupingFactor: 3, isInsecureTestOnly: false)

    /// 4-bit integers, multi-bit grouping factor 4. tfhe-rs
    /// `V1_4_PARAM_MULTI_BIT_GROUP_4_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128` (same file):
    /// 128-bit security, p-fail 2^-134.3 at 2-norm 5 (plain modulus switch).
    public static let integer4BitMultiBit4 = TFHEParameters(
        id: 7, name: "int4-128-mb4",
        source: "tfhe-rs V1_4_PARAM_MULTI_BIT_GROUP_4_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128",
        securityBits: 128, sourceFailureLog2: -134.345,
        lweDimension: 920, glweDimension: 1, polynomialSize: 2048,
        lweNoise: .tUniform(log2Bound: 45), glweNoise: .tUniform(log2Bound: 17),
        bootstrapDecomposition: GadgetDecomposition(baseLog: 22, levels: 1),
        keySwitchDecomposition: GadgetDecomposition(baseLog: 3, levels: 5),
        plaintextModulus: 16, maxNoiseNorm: 5, groupingFactor: 4, isInsecureTestOnly: false)

    /// The set that boolean gates and the circuits built from them run on. tfhe-rs has no
    /// current TUniform set for a padded single bit at 2^-128; this one carries the gates'
    /// 2-norms with margin to spare (see ``integer2Bit128``).
    public static let booleanGates: TFHEParameters = .integer2Bit128

    /// INSECURE (about 30 bits): a toy set so that serialization and plumbing tests run in
    /// milliseconds. It is never a default and no command-line flag selects it.
    public static let insecureTestOnly = TFHEParameters(
        id: 0xFFF0, name: "INSECURE-test-only",
        source: "Obscura test fixture, not a published set",
        securityBits: 0, sourceFailureLog2: 0,
        lweDimension: 64, glweDimension: 1, polynomialSize: 256,
        lweNoise: .tUniform(log2Bound: 36), glweNoise: .tUniform(log2Bound: 20),
        bootstrapDecomposition: GadgetDecomposition(baseLog: 15, levels: 2),
        keySwitchDecomposition: GadgetDecomposition(baseLog: 4, levels: 5),
        plaintextModulus: 4, maxNoiseNorm: 3, groupingFactor: 1, isInsecureTestOnly: true)

    /// The secure sets: the classic ones in order of growing precision, then the 4-bit
    /// multi-bit ones by grouping factor.
    public static let secureSets: [TFHEParameters] = [.integer2Bit128, .integer4Bit128, .integer6Bit128,
                                                      .integer4BitMultiBit2, .integer4BitMultiBit3, .integer4BitMultiBit4]

    /// The set with this identifier, if Obscura knows it.
    public static func withID(_ id: UInt16) -> TFHEParameters? {
        (secureSets + [.insecureTestOnly]).first { $0.id == id }
    }

    /// The secure set with this name.
    public static func named(_ name: String) -> TFHEParameters? {
        secureSets.first { $0.name == name }
    }
}
