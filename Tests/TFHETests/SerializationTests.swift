import ObscuraMath
import Testing
@testable import TFHE

struct SerializationTests {
    @Test("round trips: ciphertexts, seeded ciphertexts, lists, evaluation and secret keys")
    func roundTrips() throws {
        let parameters = TFHEParameters.integer2Bit128
        let (secret, _) = KeyCache.shared.keys(parameters)
        let encryptor = Encryptor(secretKey: secret)
        let seeded = encryptor.encryptSeeded(plaintext: BooleanEncoding.encode(true))
        #expect(try SeededLweCiphertext(deserializing: seeded.serialized(parameters: parameters)) == seeded)
        #expect(seeded.serialized(parameters: parameters).count == 36)
        let full = seeded.expanded()
        #expect(try LweCiphertext(deserializing: full.serialized(parameters: parameters), expecting: parameters) == full)
        #expect(encryptor.decryptBit(try LweCiphertext(deserializing: full.serialized(parameters: parameters))))
        let list = (0..<5).map { _ in encryptor.encryptSeeded(plaintext: 0) }
        #expect(try [SeededLweCiphertext](deserializing: list.serialized(parameters: parameters)) == list)
        // Under the small key: its own kind, and the dimension comes back from it.
        let smallList = (0..<5).map { _ in encryptor.encryptSeeded(plaintext: 0, key: .small) }
        let smallBytes = smallList.serialized(parameters: parameters)
        #expect(smallBytes[6] == 10 && smallBytes.count == list.serialized(parameters: parameters).count)
        let smallRestored = try [SeededLweCiphertext](deserializing: smallBytes, expecting: parameters)
        #expect(smallRestored == smallList && smallRestored.allSatisfy { $0.dimension == parameters.lweDimension })
        let fulls = list.map { $0.expanded() }
        #expect(try [LweCiphertext](deserializing: fulls.serialized(parameters: parameters)) == fulls)
        let restoredSecret = try SecretKey(deserializing: secret.serialized())
        #expect(restoredSecret.smallKey == secret.smallKey && restoredSecret.bigKey == secret.bigKey)

        let toy = SecretKey(parameters: .insecureTestOnly, deterministicSeed: Seed128(low: 1, high: 1))
        let compressed = toy.makeEvaluationKey(deterministicSeed: Seed128(low: 2, high: 2))
        let bytes = compressed.serialized()
        #expect(bytes.count == compressed.serializedSize)
        #expect(try CompressedEvaluationKey(deserializing: bytes) == compressed)
    }

    @Test("rounded lists: a quarter of the bytes, every word within 2^47, measured phase error within the budgeted variance")
    func roundedLists() throws {
        let parameters = TFHEParameters.integer4Bit128
        let secret = SecretKey(parameters: parameters, deterministicSeed: Seed128(low: 5, high: 5))
        let encryptor = Encryptor(secretKey: secret)
        let messages = (0..<200).map { UInt64($0 % 16) &* parameters.delta }
        let ciphertexts = messages.map { encryptor.encryptSeeded(plaintext: $0).expanded() }
        let full = ciphertexts.serialized(parameters: parameters), rounded = ciphertexts.serializedRounded(parameters: parameters)
        #expect(rounded.count - 16 == (full.count - 16) / 4)
        let restored = try [LweCiphertext](deserializingRounded: rounded, expecting: parameters)
        var sumOfSquares = 0.0
        for (original, back) in zip(ciphertexts, restored) {
            for (a, b) in zip(original.storage, back.storage) { #expect(abs(Double(Int64(bitPattern: a &- b))) <= Double.pow2(47)) }
            let error = Double(Int64(bitPattern: secret.phase(back) &- secret.phase(original))) / Double.pow2(64)
            sumOfSquares += error * error
        }
        // The budget assumes every key bit is 1; a uniform key has about half of them.
        let measured = sumOfSquares / Double(ciphertexts.count), bound = [LweCiphertext].roundingPhaseVariance(parameters)
        #expect(measured < bound && measured > bound / 4, "measured \(measured), bound \(bound)")
        #expect(throws: SerializationError.self) { _ = try [LweCiphertext](deserializing: rounded) }
        #expect(throws: SerializationError.self) { _ = try [LweCiphertext](deserializingRounded: full) }
        for length in stride(from: 0, to: rounded.count, by: 997) {
            #expect(throws: SerializationError.self) { _ = try [LweCiphertext](deserializingRounded: Array(rounded[0..<length])) }
        }
    }

    @Test("the seeded upload is a small fraction of the full ciphertext")
    func seededIsSmaller() {
        let (secret, _) = KeyCache.shared.keys(.integer2Bit128)
        let encryptor = Encryptor(secretKey: secret)
        let seeded = encryptor.encryptSeeded(plaintext: 0)
        #expect(seeded.serialized(parameters: .integer2Bit128).count * 2 < seeded.expanded().serialized(parameters: .integer2Bit128).count)
    }

    @Test("a secret key is refused wherever a public object is read")
    func secretKeyRefused() {
        let toy = SecretKey(parameters: .insecureTestOnly, deterministicSeed: Seed128(low: 1, high: 1))
        let bytes = toy.serialized()
        #expect(throws: SerializationError.secretKeyNotAccepted) { _ = try CompressedEvaluationKey(deserializing: bytes) }
        #expect(throws: SerializationError.secretKeyNotAccepted) { _ = try LweCiphertext(deserializing: bytes) }
        #expect(throws: SerializationError.secretKeyNotAccepted) { _ = try [SeededLweCiphertext](deserializing: bytes) }
    }

    @Test("hostile headers: version, kind, parameter set, reserved field, size limit, absurd counts")
    func hostileHeaders() {
        let parameters = TFHEParameters.integer2Bit128
        let seeded = SeededLweCiphertext(seed: Seed128(low: 1, high: 2), body: 3, dimension: parameters.bigLweDimension)
        let good = seeded.serialized(parameters: parameters)
        var badVersion = good; badVersion[4] = 9
        #expect(throws: SerializationError.unsupportedVersion(9)) { _ = try SeededLweCiphertext(deserializing: badVersion) }
        #expect(throws: SerializationError.wrongKind(expected: 1, found: 2)) { _ = try LweCiphertext(deserializing: good) }
        var unknown = good; unknown[8] = 0x77; unknown[9] = 0x77
        #expect(throws: SerializationError.unknownParameterSet(0x7777)) { _ = try SeededLweCiphertext(deserializing: unknown) }
        var retired = good; retired[8] = 1; retired[9] = 0  // gates-128, whose Gaussian set tfhe-rs retired
        #expect(throws: SerializationError.unknownParameterSet(1)) { _ = try SeededLweCiphertext(deserializing: retired) }
        #expect(throws: SerializationError.parameterMismatch(expected: 2, found: 4)) {
            _ = try SeededLweCiphertext(deserializing: good, expecting: .integer4Bit128)
        }
        var reserved = good; reserved[10] = 1
        #expect(throws: SerializationError.invalidValue("reserved header field is not zero")) {
            _ = try SeededLweCiphertext(deserializing: reserved)
        }
        #expect(throws: SerializationError.tooLarge(size: good.count, limit: 20)) {
            _ = try SeededLweCiphertext(deserializing: good, limit: 20)
        }
        #expect(throws: SerializationError.trailingBytes(1)) { _ = try SeededLweCiphertext(deserializing: good + [0]) }
        var absurd = [SeededLweCiphertext]().serialized(parameters: parameters)
        absurd[12] = 0xFF; absurd[13] = 0xFF; absurd[14] = 0xFF; absurd[15] = 0xFF
        #expect(throws: SerializationError.self) { _ = try [SeededLweCiphertext](deserializing: absurd) }
        #expect(throws: SerializationError.self) { _ = try [LweCiphertext](deserializing: absurd) }
        var badBits = SecretKey(parameters: .insecureTestOnly, deterministicSeed: Seed128(low: 1, high: 1)).serialized()
        badBits[20] = 2
        #expect(throws: SerializationError.invalidValue("secret key bits must be 0 or 1")) { _ = try SecretKey(deserializing: badBits) }
    }

    @Test("every truncation of every kind of object is a typed error")
    func truncations() {
        let toy = SecretKey(parameters: .insecureTestOnly, deterministicSeed: Seed128(low: 1, high: 1))
        let key = toy.makeEvaluationKey(deterministicSeed: Seed128(low: 2, high: 2)).serialized()
        let encryptor = Encryptor(secretKey: toy)
        let parameters = TFHEParameters.insecureTestOnly
        let seeded = encryptor.encryptSeeded(plaintext: 0)
        let objects: [(String, [UInt8], ([UInt8]) throws -> Void)] = [
            ("seeded", seeded.serialized(parameters: parameters), { _ = try SeededLweCiphertext(deserializing: $0) }),
            ("full", seeded.expanded().serialized(parameters: parameters), { _ = try LweCiphertext(deserializing: $0) }),
            ("list", [seeded, seeded].serialized(parameters: parameters), { _ = try [SeededLweCiphertext](deserializing: $0) }),
            ("secret", toy.serialized(), { _ = try SecretKey(deserializing: $0) }),
        ]
        for (name, bytes, read) in objects {
            for length in 0..<bytes.count {
                #expect(throws: SerializationError.self, "\(name) cut at \(length)") { try read(Array(bytes[0..<length])) }
            }
        }
        for length in stride(from: 0, to: key.count, by: 4099) {
            #expect(throws: SerializationError.self) { _ = try CompressedEvaluationKey(deserializing: Array(key[0..<length])) }
        }
    }

    @Test("random bytes, with and without a valid header, never crash")
    func randomBytes() {
        var rng = CSPRNG(seed: Seed128(low: 42, high: 42), domain: "fuzz")
        let header = SeededLweCiphertext(seed: Seed128(low: 0, high: 0), body: 0, dimension: TFHEParameters.insecureTestOnly.bigLweDimension)
            .serialized(parameters: .insecureTestOnly)[0..<12]
        for round in 0..<20_000 {
            let length = Int(rng.next() % 200)
            var bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if round % 2 == 0 { bytes = Array(header) + bytes }
            if round % 4 == 0, bytes.count > 6 { bytes[6] = UInt8(1 + rng.next() % 7); bytes[7] = 0 }
            _ = try? SeededLweCiphertext(deserializing: bytes)
            _ = try? LweCiphertext(deserializing: bytes)
            _ = try? [SeededLweCiphertext](deserializing: bytes)
            _ = try? [LweCiphertext](deserializing: bytes)
            _ = try? [LweCiphertext](deserializingRounded: bytes)
            _ = try? CompressedEvaluationKey(deserializing: bytes)
            _ = try? SecretKey(deserializing: bytes)
        }
    }
}

struct KnownAnswerTests {
    /// FNV-1a over the little-endian bytes of some words: a digest that needs no dependency.
    static func digest(_ words: [UInt64]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for word in words {
            for byte in 0..<8 {
                hash ^= (word >> UInt64(8 * byte)) & 0xFF
                hash = hash &* 0x100_0000_01b3
            }
        }
        return hash
    }

    @Test("fixed seeds give fixed secret keys, evaluation keys and ciphertexts")
    func fixedSeeds() {
        // TUniform noise is sampled with integer operations only, so the digests are the same on
        // every platform.
        let secret = SecretKey(parameters: .integer2Bit128, deterministicSeed: Seed128(low: 11, high: 12))
        let key = secret.makeEvaluationKey(deterministicSeed: Seed128(low: 13, high: 14))
        let encryptor = Encryptor(secretKey: secret, deterministicSeed: Seed128(low: 15, high: 16))
        let ciphertext = encryptor.encryptSeeded(plaintext: BooleanEncoding.encode(true))
        let observed = [Self.digest(secret.smallKey + secret.bigKey), Self.digest(key.bootstrapBodies),
                        Self.digest(key.keySwitchBodies), Self.digest([ciphertext.seed.low, ciphertext.seed.high, ciphertext.body])]
        #expect(observed == KnownAnswers.integer2Bit128)
    }
}

/// Digests of the objects made from fixed seeds: they pin key generation, the bootstrapping
/// and key-switching key layouts, encryption and the CSPRNG stream. A change here breaks every
/// stored seeded object.
enum KnownAnswers {
    static let integer2Bit128: [UInt64] = [10_212_178_162_186_167_812, 14_527_818_250_522_941_536,
                                    13_286_694_747_670_902_391, 18_044_132_428_692_234_276]
}

/// The encryptor's generators cannot be duplicated: copies of a holder share one stream.
struct EncryptorStreamTests {
    @Test("A copied encryptor (or a copied holder of one) never replays a mask seed or a noise draw")
    func copiesShareTheStream() {
        let secret = SecretKey(parameters: .insecureTestOnly)
        let first = Encryptor(secretKey: secret)
        let copy = first
        let a = first.encryptSeeded(plaintext: 0), b = copy.encryptSeeded(plaintext: 0)
        #expect(a.seed != b.seed)
        #expect(a.body != b.body)
        struct Holder { var encryptor: Encryptor }
        let holder = Holder(encryptor: Encryptor(secretKey: secret))
        let copiedHolder = holder
        #expect(holder.encryptor.encryptSeeded(plaintext: 7).seed != copiedHolder.encryptor.encryptSeeded(plaintext: 7).seed)
    }
}
