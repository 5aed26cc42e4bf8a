import ObscuraMath
import Testing
@testable import TFHE

/// The packing key switch and the packed result format: every value comes back exactly, the
/// noise it adds is the model's, the transport rounding stays inside its bound, and hostile
/// bytes are typed errors.
struct PackingTests {
    /// `count` fresh encryptions of random multiples of 2^-8 under the big key, the messages,
    /// and the values packed by the evaluation key.
    static func packedSamples(_ parameters: TFHEParameters, count: Int)
        -> (secret: SecretKey, inputs: [LweCiphertext], messages: [UInt64], packed: PackedLweList) {
        let (secret, key) = KeyCache.shared.keys(parameters, seed: 7)
        let encryptor = Encryptor(secretKey: secret, deterministicSeed: Seed128(low: 23, high: UInt64(parameters.id)))
        var random = CSPRNG(seed: Seed128(low: 24, high: 0), domain: "packing-test.messages")
        let messages = (0..<count).map { _ in (random.next() & 0xFF) << 56 }
        let inputs = messages.map { encryptor.encrypt(plaintext: $0) }
        return (secret, inputs, messages, key.pack(inputs))
    }

    /// The noise the packing adds: each packed value's phase minus its input's, over 4,096 values.
    static func packingCheck(_ parameters: TFHEParameters) -> NoiseTests.Check {
        let (secret, inputs, _, packed) = packedSamples(parameters, count: 4096)
        let samples = inputs.indices.map { NoiseTests.torusError(secret.phase(packed.extract($0)), secret.phase(inputs[$0])) }
        return NoiseTests.Check(stage: "\(parameters.name) packing key switch", samples: samples,
                                predicted: NoiseModel(parameters, secretKey: secret).packingKeySwitchVariance, tailProbability: 0.05)
    }

    static let integer4Packing = packingCheck(.integer4Bit128)

    @Test("packing: every value of 1.5 GLWEs decrypts to its message, before and after a 17-bit transport",
          arguments: TFHEParameters.secureSets)
    func packedValuesDecrypt(parameters: TFHEParameters) throws {
        let count = parameters.packing.polynomialSize * 3 / 2
        let (secret, inputs, messages, packed) = Self.packedSamples(parameters, count: count)
        #expect(packed.count == count && packed.words.count == 2 * parameters.packing.glweWords)
        let restored = try PackedLweList(deserializing: packed.serialized(transportBits: 17), expecting: parameters)
        for (p, message) in messages.enumerated() {
            let direct = secret.phase(packed.extract(p)), transported = secret.phase(restored.extract(p))
            #expect(abs(NoiseTests.torusError(direct, message)) < 0x1p-9, "value \(p)")
            #expect(abs(NoiseTests.torusError(transported, message)) < 0x1p-9, "value \(p)")
        }
        #expect(inputs.count == count)
    }

    @Test("packing key switch: added variance as predicted for the key, tail as predicted (4,096 values)",
          arguments: TFHEParameters.secureSets)
    func packingNoise(parameters: TFHEParameters) {
        let check = parameters == .integer4Bit128 ? Self.integer4Packing : Self.packingCheck(parameters)
        check.expectMatches()
    }

    @Test("the packing check fails against a model 20% off either way")
    func packingCheckCanFail() {
        let check = Self.integer4Packing
        #expect(check.varianceMatches)
        #expect(!check.against(predictedTimes: 1 / 1.2).varianceMatches, "\(check)")
        #expect(!check.against(predictedTimes: 1.2).varianceMatches, "\(check)")
    }

    @Test("transport rounding: each word keeps its top b bits exactly (b = 1, 7, 13, 17, 32); the phase moves within the bound")
    func transportRounding() throws {
        let parameters = TFHEParameters.integer4Bit128
        let (secret, _, _, packed) = Self.packedSamples(parameters, count: 1024)
        for bits in [1, 7, 13, 17, 32] {
            let bytes = packed.serialized(transportBits: bits)
            #expect(bytes.count == PackedLweList.serializedSize(values: 1024, bits: bits, parameters: parameters))
            let restored = try PackedLweList(deserializing: bytes, expecting: parameters)
            let shift = UInt64(64 - bits)
            let expected = packed.words.map { (($0 &+ (UInt64(1) << (shift - 1))) >> shift) << shift }
            #expect(restored.words == expected, "\(bits) bits")
        }
        // The phase error of 13-bit words, over 4 GLWEs (the values of one GLWE share its
        // masks' rounding errors, so they are far from independent): inside the bound that plans
        // use, and of its order (the key has about half its bits set).
        let wide = Self.packedSamples(parameters, count: 4096).packed
        let restored = try PackedLweList(deserializing: wide.serialized(transportBits: 13), expecting: parameters)
        let errors = (0..<4096).map { NoiseTests.torusError(secret.phase(restored.extract($0)), secret.phase(wide.extract($0))) }
        let measured = errors.reduce(0) { $0 + $1 * $1 } / Double(errors.count)
        let bound = PackedLweList.transportRoundingVariance(parameters, bits: 13)
        #expect(measured <= bound && measured >= 0.25 * bound, "measured \(measured), bound \(bound)")
    }

    @Test("hostile packed lists: truncated, padded, wrong bit counts, absurd counts, another kind: typed errors")
    func hostileBytes() throws {
        let parameters = TFHEParameters.integer4Bit128
        let bytes = Self.packedSamples(parameters, count: 10).packed.serialized(transportBits: 17)
        for length in [0, 5, 12, 16, 20, bytes.count - 1] {
            #expect(throws: SerializationError.self) { _ = try PackedLweList(deserializing: Array(bytes[0..<length])) }
        }
        #expect(throws: SerializationError.self) { _ = try PackedLweList(deserializing: bytes + [0]) }
        for bits: UInt8 in [0, 33, 255] {
            var bad = bytes
            bad[16] = bits
            #expect(throws: SerializationError.self) { _ = try PackedLweList(deserializing: bad) }
        }
        var huge = bytes
        huge[12...15] = [0xFF, 0xFF, 0xFF, 0xFF]
        #expect(throws: SerializationError.self) { _ = try PackedLweList(deserializing: huge) }
        #expect(throws: SerializationError.self) { _ = try PackedLweList(deserializing: bytes, expecting: .integer2Bit128) }
        #expect(throws: SerializationError.self) { _ = try [LweCiphertext](deserializingRounded: bytes) }
    }

    @Test("an evaluation key of the retired kind 3 (no packing key) is refused with a message that says to make a new one")
    func retiredEvaluationKey() throws {
        let (_, key) = KeyCache.shared.keys(.integer2Bit128, seed: 7)
        var bytes = key.compressed.serialized()
        bytes[6] = 3
        bytes[7] = 0
        #expect(throws: SerializationError.invalidValue(
            "an evaluation key without a packing key (kind 3, made before results were packed): make a new one")) {
            _ = try CompressedEvaluationKey(deserializing: bytes)
        }
    }
}
