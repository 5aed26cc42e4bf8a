import ObscuraMath
import Testing
@testable import RLWE

/// Every object round-trips; hostile bytes give a typed error, never a crash.
struct SerializationTests {
    static let context = RlweContext(parameters: try! .insecureTestOnly(
        scheme: .ckks(logScale: 30), polynomialSize: 64, ciphertextModulusBits: [50, 35, 35], specialModulusBits: [51]))

    @Test("Ciphertexts, seeded ciphertexts and keys round-trip and still compute")
    func roundTrips() throws {
        let context = Self.context
        let secret = SecretKey(context: context)
        let keygen = KeyGenerator(secretKey: secret)
        let evaluationKey = keygen.makeEvaluationKey(rotations: [1, 3], conjugation: true)
        let encoder = try CKKSEncoder(context: context)
        let values = (0..<32).map { Complex(Double($0) / 32, -Double($0) / 64) }
        let seeded = try Encryptor(secretKey: secret).encrypt(encoder.encode(values))
        let seededBytes = seeded.serialized()
        let reread = try SeededCiphertext(deserializing: seededBytes, context: context)
        #expect(reread.serialized() == seededBytes)
        let full = reread.expanded()
        let fullBytes = full.serialized()
        #expect(try Ciphertext(deserializing: fullBytes, context: context).serialized() == fullBytes)
        // Packed residues: 50 + 35 + 35 bits a coefficient; the seed replaces c_1.
        #expect(fullBytes.count == 16 + 10 + 2 * 64 * 120 / 8)
        #expect(seededBytes.count == 16 + 9 + 16 + 64 * 120 / 8)

        let keyBytes = evaluationKey.serialized()
        let serverKey = try EvaluationKey(deserializing: keyBytes, context: context)
        #expect(serverKey.serialized() == keyBytes)
        #expect(Set(serverKey.galois.keys) == Set(evaluationKey.galois.keys))
        let evaluator = try Evaluator(context: context, key: serverKey)
        let rotated = try evaluator.rotate(full, by: 3)
        let decoded = try encoder.decode(Decryptor(secretKey: secret).decryptApproximate(rotated))
        #expect(zip(decoded, (0..<32).map { values[($0 + 3) % 32] }).allSatisfy { ($0 - $1).magnitude < 1e-4 })

        let publicKey = keygen.makePublicKey()
        #expect(try PublicKey(deserializing: publicKey.serialized(), context: context).serialized() == publicKey.serialized())
        let secretBytes = secret.serialized()
        #expect(try SecretKey(deserializing: secretBytes, context: context).coefficients == secret.coefficients)
        let relinearization = try #require(evaluationKey.relinearization)
        #expect(try KeySwitchingKey(deserializing: relinearization.serialized(), context: context).bodyWords == relinearization.bodyWords)
    }

    @Test("Hostile bytes: truncation, flips, wrong kinds and sets, out-of-range residues, secret keys")
    func hostileBytes() throws {
        let context = Self.context
        let secret = SecretKey(context: context)
        let keyBytes = KeyGenerator(secretKey: secret).makeEvaluationKey(rotations: [1]).serialized()
        let ctBytes = try Encryptor(secretKey: secret).encrypt(CKKSEncoder(context: context).encode([0.5])).expanded().serialized()

        for length in [0, 3, 4, 15, 16, 17, 20, ctBytes.count / 2, ctBytes.count - 1] {
            #expect(throws: RlweError.self) { try Ciphertext(deserializing: Array(ctBytes.prefix(length)), context: context) }
        }
        #expect(throws: RlweError.self) { try Ciphertext(deserializing: ctBytes + [0], context: context) }
        for length in stride(from: 0, to: keyBytes.count, by: 997) {
            #expect(throws: RlweError.self) { try EvaluationKey(deserializing: Array(keyBytes.prefix(length)), context: context) }
        }
        // Random flips: a typed error or a well-formed object, never a trap.
        var rng = SeededGenerator(seed: 99)
        var refused = 0
        for _ in 0..<2000 {
            var bytes = ctBytes
            for _ in 0..<(1 + Int(rng.next() % 3)) { bytes[Int(rng.next() % UInt64(bytes.count))] ^= UInt8(1 + rng.next() % 255) }
            do { _ = try Ciphertext(deserializing: bytes, context: context) } catch { refused += 1 }
        }
        #expect(refused > 0)
        // A residue at or above its prime.
        var high = ctBytes
        for i in 26..<33 { high[i] = 0xFF }
        #expect(throws: RlweError.self) { try Ciphertext(deserializing: high, context: context) }
        // A secret key where an evaluation key is expected, a ciphertext as a key, another set.
        #expect(throws: RlweError.secretKeyNotAccepted) { try EvaluationKey(deserializing: secret.serialized(), context: context) }
        #expect(throws: RlweError.self) { try EvaluationKey(deserializing: ctBytes, context: context) }
        let other = RlweContext(parameters: try .insecureTestOnly(scheme: .ckks(logScale: 30), polynomialSize: 64,
                                                                  ciphertextModulusBits: [50, 35], specialModulusBits: [51]))
        #expect(throws: RlweError.self) { try Ciphertext(deserializing: ctBytes, context: other) }
        // An absurd Galois count and a bad element.
        var count = keyBytes
        for i in 17..<21 { count[i] = 0xFF }
        #expect(throws: RlweError.self) { try EvaluationKey(deserializing: count, context: context) }
        var element = keyBytes
        let elementOffset = 16 + 5 + KeySwitchingKey.payloadBytes(context)
        element[elementOffset] = 2
        #expect(throws: RlweError.self) { try EvaluationKey(deserializing: element, context: context) }
    }
}
