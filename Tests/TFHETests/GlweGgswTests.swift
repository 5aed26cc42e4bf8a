import ObscuraMath
import Testing
@testable import TFHE

struct GlweGgswTests {
    static let parameters = TFHEParameters.integer4Bit128

    /// Decodes a phase coefficient to the nearest multiple of 2^60.
    static func round60(_ x: UInt64) -> UInt64 { ((x &+ (1 << 59)) >> 60) << 60 }

    @Test("GLWE encryption decrypts to its message")
    func glweRoundTrip() {
        let (secret, _) = KeyCache.shared.keys(Self.parameters)
        var rng = CSPRNG(seed: Seed128(low: 1, high: 1), domain: "test")
        let message = (0..<Self.parameters.polynomialSize).map { _ in (rng.next() % 16) << 60 }
        let ciphertext = secret.encryptGlwe(message)
        #expect(secret.glwePhase(ciphertext).map(Self.round60) == message)
    }

    @Test("external product by GGSW(1) keeps the message, by GGSW(0) clears it; CMux selects")
    func externalProductAndCMux() {
        let (secret, _) = KeyCache.shared.keys(Self.parameters)
        var rng = CSPRNG(seed: Seed128(low: 2, high: 2), domain: "test")
        let n = Self.parameters.polynomialSize
        let m0 = (0..<n).map { _ in (rng.next() % 16) << 60 }
        let m1 = (0..<n).map { _ in (rng.next() % 16) << 60 }
        let c0 = secret.encryptGlwe(m0), c1 = secret.encryptGlwe(m1)
        let one = secret.encryptGgsw(1), zero = secret.encryptGgsw(0)
        #expect(secret.glwePhase(one.externalProduct(c1)).map(Self.round60) == m1)
        #expect(secret.glwePhase(zero.externalProduct(c1)).map(Self.round60) == [UInt64](repeating: 0, count: n))
        #expect(secret.glwePhase(one.cmux(c0, c1)).map(Self.round60) == m1)
        #expect(secret.glwePhase(zero.cmux(c0, c1)).map(Self.round60) == m0)
    }

    @Test("known answer: sample extraction of a hand-built GLWE (k = 1, N = 4 shape)")
    func sampleExtractionKnownAnswer() {
        // A = [1, 2, 3, 4], B = [9, 0, 0, 0]: a' = [A0, -A3, -A2, -A1] = [1, -4, -3, -2], b' = 9.
        let glwe = GlweCiphertext(glweDimension: 1, polynomialSize: 4, storage: [1, 2, 3, 4, 9, 0, 0, 0])
        let expected: [UInt64] = [1, UInt64(bitPattern: -4), UInt64(bitPattern: -3), UInt64(bitPattern: -2), 9]
        #expect(glwe.sampleExtract().storage == expected)
    }

    @Test("known answer: monomial rotation with the wrap-around sign")
    func rotationKnownAnswer() {
        let poly: [UInt64] = [1, 2, 3, 4]
        var out = [UInt64](repeating: 0, count: 4)
        poly.withUnsafeBufferPointer { p in out.withUnsafeMutableBufferPointer { Evaluator.rotate(p.baseAddress!, by: 1, size: 4, into: $0.baseAddress!) } }
        let once: [UInt64] = [UInt64(bitPattern: -4), 1, 2, 3]
        #expect(out == once)
        poly.withUnsafeBufferPointer { p in out.withUnsafeMutableBufferPointer { Evaluator.rotate(p.baseAddress!, by: 6, size: 4, into: $0.baseAddress!) } }
        // X^6 = -X^2.
        let twice: [UInt64] = [3, 4, UInt64(bitPattern: -1), UInt64(bitPattern: -2)]
        #expect(out == twice)
        poly.withUnsafeBufferPointer { p in out.withUnsafeMutableBufferPointer { Evaluator.rotateMinusIdentity(p.baseAddress!, by: 5, size: 4, into: $0.baseAddress!) } }
        // X^5 = -X: [-4, 1, 2, 3] negated is [4, -1, -2, -3]; minus the identity.
        let expected: [UInt64] = [3, UInt64(bitPattern: -3), UInt64(bitPattern: -5), UInt64(bitPattern: -7)]
        #expect(out == expected)
    }
}
