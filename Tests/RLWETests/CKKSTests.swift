#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Testing
import ObscuraMath
@testable import RLWE

/// CKKS: precision of every operation, measured and bounded.
struct CKKSTests {
    static let context = RlweContext(parameters: .ckksN16384)
    static let small = RlweContext(parameters: try! .insecureTestOnly(
        scheme: .ckks(logScale: 40), polynomialSize: 64, ciphertextModulusBits: [60, 40, 40], specialModulusBits: [60]))

    typealias Client = TestClient<CKKSEncoder>

    static func randomSlots(_ count: Int, _ rng: inout SeededGenerator) -> [Complex] {
        (0..<count).map { _ in Complex(Double(rng.next() >> 11) * 0x1p-52 - 1, Double(rng.next() >> 11) * 0x1p-52 - 1) }
    }

    /// −log2 of the largest slot error.
    static func bits(_ got: [Complex], _ expected: [Complex]) -> Double {
        -log2(zip(got, expected).map { ($0 - $1).magnitude }.max()!)
    }

    @Test("Encoding is the canonical embedding: slot j is m(ζ^(5^j))")
    func canonicalEmbedding() throws {
        let encoder = try CKKSEncoder(context: Self.small)
        var rng = SeededGenerator(seed: 1)
        let values = Self.randomSlots(32, &rng)
        let scale = 0x1p30
        let plaintext = try encoder.encode(values, scale: scale)
        // The integer coefficients, back from the NTT domain of the first prime.
        var limb = Array(plaintext.polynomial.limb(0))
        limb.withUnsafeMutableBufferPointer { Self.small.ciphertextTables[0].inverse($0.baseAddress!) }
        let m = limb.map { Double(Self.small.ciphertextTables[0].modulus.centered($0)) / scale }
        var e = 1
        for j in 0..<32 {
            var value = Complex(0)
            for (k, coefficient) in m.enumerated() {
                let angle = Double.pi * Double(e * k % 128) / 64
                value = value + Complex(coefficient * cos(angle), coefficient * sin(angle))
            }
            #expect((value - values[j]).magnitude < 1e-6, "slot \(j)")
            e = e * 5 % 128
        }
        #expect(Self.bits(encoder.decode(m), values) > 25)
    }

    @Test("Multiply + relinearize + rescale keeps at least 20 bits at N = 16384, scale 2^40")
    func multiplicationPrecision() throws {
        let client = Client(Self.context)
        var rng = SeededGenerator(seed: 2)
        let x = Self.randomSlots(8192, &rng), y = Self.randomSlots(8192, &rng)
        let cx = try client.encrypt(x), cy = try client.encrypt(y)
        let fresh = Self.bits(try client.decrypt(cx), x)
        let product = try client.evaluator.rescale(client.evaluator.multiplyRelinearize(cx, cy))
        let productBits = Self.bits(try client.decrypt(product), zip(x, y).map { $0 * $1 })
        print("CKKS N=16384 precision: fresh \(fresh) bits, after x·y + rescale \(productBits) bits")
        #expect(fresh > 25)
        #expect(productBits > 20)
        // The fused relinearize-and-rescale: the same scale and level, the same precision.
        let fused = try client.evaluator.multiplyRelinearizeRescale(cx, cy)
        #expect(fused.level == product.level && fused.scale == product.scale)
        let fusedBits = Self.bits(try client.decrypt(fused), zip(x, y).map { $0 * $1 })
        print("CKKS N=16384 fused multiply-relinearize-rescale: \(fusedBits) bits")
        #expect(fusedBits > 20)
        // Down the chain: x^(2^4) through four squarings, each rescaled.
        var power = cx, expected = x
        for _ in 1...4 {
            power = try client.evaluator.rescale(client.evaluator.multiplyRelinearize(power, power))
            expected = expected.map { $0 * $0 }
        }
        #expect(power.level == 2)
        #expect(Self.bits(try client.decrypt(power), expected) > 12)
    }

    @Test("Add, subtract, plaintext products and scales", arguments: [64, 16384])
    func linearOperations(n: Int) throws {
        let client = Client(n == 64 ? Self.small : Self.context)
        var rng = SeededGenerator(seed: 4)
        let x = Self.randomSlots(n / 2, &rng), y = Self.randomSlots(n / 2, &rng)
        let cx = try client.encrypt(x), cy = try client.encrypt(y)
        let e = client.evaluator
        #expect(Self.bits(try client.decrypt(e.add(cx, cy)), zip(x, y).map(+)) > 24)
        #expect(Self.bits(try client.decrypt(e.subtract(cx, cy)), zip(x, y).map(-)) > 24)
        #expect(Self.bits(try client.decrypt(e.add(cx, client.encoder.encode(y))), zip(x, y).map(+)) > 24)
        let weights = try client.encoder.encode(y, scale: Double(Self.context.ciphertextTables[0].modulus.value >> 20))
        let product = try e.multiply(cx, weights)
        // Prepared weights (Shoup constants) give the same ciphertext word for word.
        #expect(!weights.isPrepared && weights.prepared().isPrepared)
        #expect(try e.multiply(cx, weights.prepared()).components == product.components)
        #expect(Self.bits(try client.decrypt(product), zip(x, y).map(*)) > 20)
        #expect(Self.bits(try client.decrypt(e.rescale(e.multiply(cx, client.encoder.encode(y)))), zip(x, y).map(*)) > 20)
        #expect(throws: RlweError.scaleMismatch(product.scale, cx.scale)) { try e.add(product, cx) }
        // A real factor moves into the scale: the residues stay (negated for c < 0).
        for c in [3.5, -0.125, -1e6] {
            let scaled = try e.multiply(cx, byRescaling: c)
            #expect(Self.bits(try client.decrypt(scaled), x.map { $0 * Complex(c) }) > 24 - log2(abs(c)))
            #expect(scaled.scale == cx.scale / abs(c))
        }
        #expect(throws: RlweError.self) { try e.multiply(cx, byRescaling: 0) }
        #expect(throws: RlweError.self) { try e.multiply(cx, byRescaling: .nan) }
    }

    @Test("Rotations and conjugation permute the slots", arguments: [64, 16384])
    func rotations(n: Int) throws {
        let client = Client(n == 64 ? Self.small : Self.context)
        var rng = SeededGenerator(seed: 6)
        let slots = n / 2
        let x = Self.randomSlots(slots, &rng)
        let cx = try client.encrypt(x)
        func rotated(_ k: Int) -> [Complex] { (0..<slots).map { x[(($0 + k) % slots + slots) % slots] } }
        for k in [1, -2, 5] { #expect(Self.bits(try client.decrypt(client.evaluator.rotate(cx, by: k)), rotated(k)) > 22) }
        let hoisted = try client.evaluator.rotations(of: cx, by: [5, 1, -2])
        for (ct, k) in zip(hoisted, [5, 1, -2]) { #expect(Self.bits(try client.decrypt(ct), rotated(k)) > 22) }
        #expect(Self.bits(try client.decrypt(client.evaluator.conjugate(cx)), x.map(\.conjugate)) > 22)
    }
}

extension CKKSTests {
    @Test("Scale, headroom and precision queries; independent ciphertexts on all cores")
    func queriesAndParallelism() throws {
        let client = Client(Self.small)
        var rng = SeededGenerator(seed: 8)
        let inputs = (0..<8).map { _ in Self.randomSlots(32, &rng) }
        let cts = try inputs.map(client.encrypt)
        #expect(cts[0].logScale == 40)
        let headroom = cts[0].headroomBits
        let squares = try ParallelWork.map(cts.count) { i in
            try client.evaluator.rescale(client.evaluator.multiplyRelinearize(cts[i], cts[i]))
        }
        for (square, x) in zip(squares, inputs) {
            #expect(square.level == 2 && abs(square.logScale - 40) < 0.01)
            #expect(square.headroomBits < headroom - 39)
            #expect(try client.decryptor.precisionBits(square, expected: x.map { $0 * $0 }, encoder: client.encoder) > 18)
        }
    }
}

extension CKKSTests {
    @Test("Dropping to a lower level keeps the message, so operands of different depths can meet")
    func dropToLevel() throws {
        let client = Client(Self.small)
        var rng = SeededGenerator(seed: 12)
        let x = Self.randomSlots(32, &rng), y = Self.randomSlots(32, &rng)
        let cx = try client.encrypt(x), cy = try client.encrypt(y)
        let square = try client.evaluator.rescale(client.evaluator.multiplyRelinearize(cy, cy))  // level 2
        #expect(throws: RlweError.levelMismatch(3, 2)) { try client.evaluator.multiply(cx, square) }
        let lowered = try client.evaluator.dropToLevel(cx, square.level)
        #expect(lowered.level == 2 && lowered.scale == cx.scale)
        #expect(Self.bits(try client.decrypt(lowered), x) > 25)
        let product = try client.evaluator.multiplyRelinearize(lowered, square)
        #expect(Self.bits(try client.decrypt(product), zip(x, y).map { $0 * $1 * $1 }) > 18)
    }
}
