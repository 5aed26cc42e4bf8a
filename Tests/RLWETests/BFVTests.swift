import Testing
@testable import RLWE

/// BFV: every operation exact on random slot vectors, against the same operation on the
/// plaintext vectors mod t.
struct BFVTests {
    /// The 128-bit N = 8192 set (depth 3) and a small insecure one for broad sweeps.
    static let context = RlweContext(parameters: .bfvN8192)
    static let small = RlweContext(parameters: try! .insecureTestOnly(
        scheme: .bfv(plaintextModulus: 65537), polynomialSize: 64, ciphertextModulusBits: [50, 50, 50], specialModulusBits: [51]))

    typealias Client = TestClient<BatchEncoder>

    static func randomSlots(_ count: Int, t: UInt64, _ rng: inout SeededGenerator) -> [Int64] {
        (0..<count).map { _ in Int64(rng.next() % t) - Int64(t / 2) }
    }

    static func reduce(_ v: [Int64], _ t: UInt64) -> [Int64] {
        let m = Modulus(t)
        return v.map { m.centered(m.reduce(signed: $0)) }
    }

    @Test("Encoding round trips; slot products are ring products", arguments: [64, 8192])
    func encoding(n: Int) throws {
        let context = n == 64 ? Self.small : Self.context
        let encoder = try BatchEncoder(context: context)
        var rng = SeededGenerator(seed: UInt64(n))
        let values = Self.randomSlots(n, t: 65537, &rng)
        #expect(encoder.decodeSigned(try encoder.encode(values)) == values)
        if n == 64 {
            // The product of the message polynomials mod (X^N + 1, t) holds the slot-wise product.
            let other = Self.randomSlots(n, t: 65537, &rng)
            let a = try encoder.encode(values).coefficients, b = try encoder.encode(other).coefficients
            let t = Modulus(65537)
            let product = ArithmeticTests.schoolbook(a, b.enumerated().map { ($0.offset, $0.element) }, q: t)
            #expect(encoder.decodeSigned(BFVPlaintext(coefficients: product)) == Self.reduce(zip(values, other).map { $0 * $1 }, 65537))
        }
    }

    @Test("Add, subtract, negate, plaintext and scalar products are exact", arguments: [64, 8192])
    func linearOperations(n: Int) throws {
        let client = Client(n == 64 ? Self.small : Self.context)
        var rng = SeededGenerator(seed: 3)
        for _ in 0..<(n == 64 ? 20 : 3) {
            let x = Self.randomSlots(n, t: 65537, &rng), y = Self.randomSlots(n, t: 65537, &rng)
            let cx = try client.encrypt(x), cy = try client.encrypt(y)
            let e = client.evaluator
            #expect(try client.decrypt(cx) == x)
            #expect(try client.decrypt(e.add(cx, cy)) == Self.reduce(zip(x, y).map(+), 65537))
            #expect(try client.decrypt(e.subtract(cx, cy)) == Self.reduce(zip(x, y).map(-), 65537))
            #expect(try client.decrypt(e.negate(cx)) == Self.reduce(x.map { -$0 }, 65537))
            #expect(try client.decrypt(e.add(cx, client.encoder.encode(y))) == Self.reduce(zip(x, y).map(+), 65537))
            let weights = try client.encoder.prepare(y)
            #expect(try client.decrypt(e.multiply(cx, weights)) == Self.reduce(zip(x, y).map(*), 65537))
            #expect(try client.decrypt(e.multiply(cx, byInteger: -1234)) == Self.reduce(x.map { $0 * -1234 }, 65537))
        }
    }

    @Test("Linear combinations (small weights: 128-bit accumulation; large: reduced), constants and squares are exact", arguments: [64, 8192])
    func linearCombinations(n: Int) throws {
        let client = Client(n == 64 ? Self.small : Self.context)
        let e = client.evaluator
        var rng = SeededGenerator(seed: 11)
        let vectors = (0..<9).map { _ in Self.randomSlots(n, t: 65537, &rng) }
        let cts = try vectors.map { try client.encrypt($0) }
        let small: [Int64] = [3, -7, 0, 127, -128, 1, -1, 60, -33]
        let large: [Int64] = [1 << 40, -5, 12345678901, 0, -(1 << 50), 9, 65537 * 3 + 2, -1, 77]
        // 2^16 terms of about 2^63 with 50-bit primes: Σ|w|·q passes 2^128, so these take the reduced path.
        let huge: [Int64] = (0..<(n == 64 ? 1 << 16 : 9)).map { ($0 % 2 == 0 ? 1 : -1) * (Int64.max - Int64($0) * 977) }
        func row(_ weights: [Int64]) throws -> SparseIntegerRows {
            try SparseIntegerRows(rowStart: [0, weights.count], columns: weights.indices.map { Int32($0 % cts.count) }, weights: weights)
        }
        #expect(try e.accumulatesLazily(prime: 0, rows: row(small)) && e.accumulatesLazily(prime: 0, rows: row(large)))
        #expect(try e.accumulatesLazily(prime: 0, rows: row(huge)) == (n != 64))
        let t = Modulus(65537)
        for weights in [small, large, huge] {
            let expected = (0..<n).map { k in
                weights.indices.reduce(UInt64(0)) {
                    t.add($0, t.multiply(t.reduce(signed: vectors[$1 % cts.count][k]), t.reduce(signed: weights[$1])))
                }
            }.map { t.centered($0) }
            #expect(try client.decrypt(e.linearCombinations(cts, rows: row(weights))[0]) == expected)
        }
        #expect(try client.decrypt(e.linearCombination(cts, weights: small)) == client.decrypt(e.linearCombinations(cts, rows: row(small))[0]))
        #expect(try client.decrypt(e.add(cts[0], constant: -40_000)) == Self.reduce(vectors[0].map { $0 - 40_000 }, 65537))
        #expect(try client.decrypt(e.squareRelinearize(cts[1])) == Self.reduce(vectors[1].map { $0 * $0 }, 65537))
        #expect(try client.decrypt(e.square(cts[2])) == client.decrypt(e.multiply(cts[2], cts[2])))
        // Many rows at once: mixed signs, only negative weights, an empty row, repeated inputs.
        let rows = try SparseIntegerRows(rowStart: [0, 3, 5, 5, 7], columns: [0, 4, 8, 1, 2, 3, 3],
                                         weights: [5, -9, 100, -1, -300, 2, 2])
        let results = try e.linearCombinations(cts, rows: rows)
        #expect(results.count == 4)
        for o in 0..<4 {
            let expected = (0..<n).map { k in
                (rows.rowStart[o]..<rows.rowStart[o + 1]).reduce(Int64(0)) { $0 + rows.weights[$1] * vectors[Int(rows.columns[$1])][k] }
            }
            #expect(try client.decrypt(results[o]) == Self.reduce(expected, 65537), "row \(o)")
        }
        #expect(throws: RlweError.self) { try SparseIntegerRows(rowStart: [0, 2], columns: [0], weights: [1]) }
        #expect(throws: RlweError.self) { try e.linearCombinations(cts, rows: SparseIntegerRows(rowStart: [0, 1], columns: [9], weights: [1])) }
        #expect(throws: RlweError.self) { try e.linearCombination(cts, weights: [1]) }
        #expect(throws: RlweError.self) { try e.linearCombination([], weights: []) }
    }

    @Test("Ciphertext products are exact along a chain to the set's depth (3 at N = 8192)")
    func multiplicationChain() throws {
        let client = Client(Self.context)
        var rng = SeededGenerator(seed: 5)
        let n = 8192
        var expected = Self.randomSlots(n, t: 65537, &rng)
        var ct = try client.encrypt(expected)
        var budgets = [try client.decryptor.noiseBudget(ct)]
        for depth in 1...3 {
            let factor = Self.randomSlots(n, t: 65537, &rng)
            ct = try client.evaluator.multiplyRelinearize(ct, client.encrypt(factor))
            expected = Self.reduce(zip(expected, factor).map { $0 * $1 }, 65537)
            #expect(try client.decrypt(ct) == expected, "depth \(depth)")
            budgets.append(try client.decryptor.noiseBudget(ct))
        }
        // Squaring, and the unrelinearized three-component product, decrypt too.
        let x = Self.randomSlots(n, t: 65537, &rng)
        let cx = try client.encrypt(x)
        let square = try client.evaluator.multiply(cx, cx)
        #expect(square.size == 3)
        #expect(try client.decrypt(square) == Self.reduce(x.map { $0 * $0 }, 65537))
        #expect(budgets.last! > 0 && budgets == budgets.sorted(by: >), "budgets \(budgets)")
        print("BFV N=8192 noise budget by depth: \(budgets.map { Int($0) })")
    }

    @Test("Rotations and the row swap permute slots as the plaintext permutation", arguments: [64, 8192])
    func rotations(n: Int) throws {
        let client = Client(n == 64 ? Self.small : Self.context)
        var rng = SeededGenerator(seed: 9)
        let x = Self.randomSlots(n, t: 65537, &rng), half = n / 2
        let cx = try client.encrypt(x)
        func rotated(_ k: Int) -> [Int64] {
            (0..<n).map { s in
                let row = s / half, column = s % half
                return x[row * half + ((column + k) % half + half) % half]
            }
        }
        for k in [1, -3, 7] { #expect(try client.decrypt(client.evaluator.rotate(cx, by: k)) == rotated(k), "k = \(k)") }
        let hoisted = try client.evaluator.rotations(of: cx, by: [1, -3, 0, 7])
        #expect(try hoisted.map(client.decrypt) == [rotated(1), rotated(-3), x, rotated(7)])
        #expect(try client.decrypt(client.evaluator.swapRows(cx)) == Array(x[half...] + x[..<half]))
        let missing = client.evaluator.context.galoisElement(rotatingBy: 2)
        #expect(throws: RlweError.missingGaloisKey(element: missing)) { try client.evaluator.rotate(cx, by: 2) }
    }

    @Test("Modulus switching keeps the message; public-key encryption decrypts")
    func modulusSwitchAndPublicKey() throws {
        let client = Client(Self.context)
        var rng = SeededGenerator(seed: 13)
        let x = Self.randomSlots(8192, t: 65537, &rng)
        var ct = try client.encrypt(x)
        for level in stride(from: 2, through: 1, by: -1) {
            ct = try client.evaluator.dropLastModulus(ct)
            #expect(ct.level == level)
            #expect(try client.decrypt(ct) == x)
        }
        #expect(throws: RlweError.endOfModulusChain) { try client.evaluator.dropLastModulus(ct) }
        #expect(try client.decrypt(client.evaluator.dropToLevel(client.encrypt(x), 1)) == x)
        let publicKey = KeyGenerator(secretKey: client.secret).makePublicKey()
        let pkEncrypted = try PublicKeyEncryptor(publicKey: publicKey).encrypt(client.encoder.encode(x))
        #expect(try client.decrypt(pkEncrypted) == x)
        #expect(try client.decryptor.noiseBudget(pkEncrypted) > 100)
    }
}

extension BFVTests {
    @Test("The README's RLWE example: keys and ciphertexts cross as bytes, the server squares and rotates")
    func readmeExample() throws {
        let context = RlweContext(parameters: .bfvN8192)
        let secret = SecretKey(context: context)
        let keys = KeyGenerator(secretKey: secret).makeEvaluationKey(rotations: [1])
        let upload = keys.serialized()
        #expect(upload.count > 900_000 && upload.count < 1_100_000)
        let encoder = try BatchEncoder(context: context)
        let x = try Encryptor(secretKey: secret).encrypt(encoder.encode([3, -1, 4, 1, -5])).serialized()

        let evaluator = try Evaluator(context: context, key: try EvaluationKey(deserializing: upload, context: context))
        let ct = try SeededCiphertext(deserializing: x, context: context).expanded()
        let y = try evaluator.rotate(evaluator.multiplyRelinearize(ct, ct), by: 1)

        let slots = encoder.decodeSigned(try Decryptor(secretKey: secret).decrypt(y))
        #expect(Array(slots.prefix(5)) == [1, 16, 1, 25, 0])
        #expect(slots[4095] == 9 && slots[4096...].allSatisfy { $0 == 0 })
    }
}
