import ObscuraMath
import Testing
@testable import TFHE

struct ProgrammableBootstrapTests {
    /// A random table Z_P → Z_P from a fixed seed.
    static func randomTable(_ p: Int, seed: UInt64) -> [Int] {
        var rng = CSPRNG(seed: Seed128(low: seed, high: UInt64(p)), domain: "table")
        return (0..<p).map { _ in Int(rng.next() % UInt64(p)) }
    }

    @Test("random tables on every message, p = 4, 16 and 64, classic and multi-bit blind rotation (g = 2, 3, 4)",
          arguments: [(TFHEParameters.integer2Bit128, 1 as UInt64), (.integer2Bit128, 2),
                      (.integer4Bit128, 1), (.integer4Bit128, 2), (.integer6Bit128, 1),
                      (.integer4BitMultiBit2, 1), (.integer4BitMultiBit3, 1), (.integer4BitMultiBit4, 1),
                      (.integer4BitMultiBit4, 2)])
    func everyMessage(parameters: TFHEParameters, seed: UInt64) throws {
        let (secret, key) = KeyCache.shared.keys(parameters, seed: seed)
        let encryptor = Encryptor(secretKey: secret)
        let p = parameters.plaintextModulus
        let table = Self.randomTable(p, seed: seed)
        let inputs = (0..<p).map { encryptor.encryptInteger($0) }
        let outputs = try key.apply({ table[$0] }, toEach: inputs)
        for m in 0..<p {
            #expect(encryptor.decrypt(outputs[m]) == table[m], "p=\(p) m=\(m)")
            #expect(outputs[m].noiseNormSquared == 1)
        }
    }

    @Test("multi-value bootstrapping: coefficient j reads the table at the phase moved by j/(2N)")
    func multiValueReadings() {
        let (secret, key) = KeyCache.shared.keys(.integer4Bit128)
        let encryptor = Encryptor(secretKey: secret)
        let evaluator = Evaluator(key: key)
        let n = TFHEParameters.integer4Bit128.polynomialSize
        // Odd z at scale 1/64 against a constant table: coefficient m·N/32 reads sign(z + m).
        let out = UInt64(1) << 60, table = LookupTable(polynomialSize: n, constant: out)
        let shifts = [0, 2, 4, 6, 12]
        for z in stride(from: -19, through: 19, by: 2) {
            let input = encryptor.encrypt(plaintext: UInt64(bitPattern: Int64(z)) &* (UInt64(1) << 58))
            let readings = evaluator.bootstrap(input, table: table, coefficients: shifts.map { $0 * n / 32 })
            for (shift, reading) in zip(shifts, readings) {
                #expect(encryptor.decryptSigned(reading, delta: out) == (z + shift > 0 ? 1 : -1), "z \(z) shift \(shift)")
            }
        }
        #expect(evaluator.bootstrapCount == 20)
    }

    @Test("batched bootstraps (a full batch and a partial one, on one core and on all) give word for word the single bootstraps' outputs",
          arguments: [TFHEParameters.integer4Bit128, .integer4BitMultiBit3])
    func batchesEqualSingles(parameters: TFHEParameters) {
        let (secret, key) = KeyCache.shared.keys(parameters)
        let encryptor = Encryptor(secretKey: secret)
        let p = parameters.plaintextModulus
        let table = LookupTable(parameters: parameters) { (3 * $0 + 1) % p }
        let count = Evaluator.batchSize + 2
        let inputs = (0..<count).map { encryptor.encryptInteger($0 % p).ciphertext }
        let coefficients = (0..<count).map { [0, 7 * $0 + 1] }
        let single = Evaluator(key: key)
        let expected = zip(inputs, coefficients).map { single.bootstrap($0, table: table, coefficients: $1) }
        let batched = Evaluator(key: key)
        #expect(batched.bootstrap(inputs, table: table, coefficients: coefficients) == expected)
        #expect(batched.bootstrapCount == count)
        #expect(key.bootstrapInParallel(count: count, table: table) { (inputs[$0], coefficients[$0]) } == expected)
        for (i, outputs) in expected.enumerated() {
            #expect(encryptor.decryptInteger(outputs[0]) == (3 * (i % p) + 1) % p)
        }
    }

    @Test("linear operations need no bootstrap and decrypt exactly")
    func linearOperations() throws {
        let (secret, key) = KeyCache.shared.keys(.integer4Bit128)
        let encryptor = Encryptor(secretKey: secret)
        let delta = TFHEParameters.integer4Bit128.delta
        for (a, b) in [(3, 5), (7, 0), (0, 7), (2, 2)] {
            let ca = encryptor.encryptInteger(a), cb = encryptor.encryptInteger(b)
            #expect(encryptor.decrypt(ca + cb) == a + b)
            #expect(encryptor.decrypt(ca - cb) == a - b)
            #expect(encryptor.decrypt(2 * ca) == 2 * a)
            #expect(encryptor.decrypt(-1 * cb) == -b)
            #expect(encryptor.decrypt(ca.adding(4, delta: delta)) == a + 4)
            #expect((ca - cb).range == -15...15)
        }
        // A signed range is shifted into the message space: ReLU(a - b) by one bootstrap.
        let evaluator = Evaluator(key: key)
        let a = encryptor.encryptInteger(2, range: 0...7)
        let b = encryptor.encryptInteger(6, range: 0...7)
        let relu = try evaluator.apply({ max($0, 0) }, to: a - b)
        #expect(encryptor.decrypt(relu) == 0)
        let relu2 = try evaluator.apply({ max($0, 0) }, to: b - a)
        #expect(encryptor.decrypt(relu2) == 4)
        #expect(evaluator.bootstrapCount == 2)
    }

    @Test("bootstraps refuse inputs beyond the message space or the noise budget")
    func refusals() {
        let (secret, key) = KeyCache.shared.keys(.integer4Bit128)
        let encryptor = Encryptor(secretKey: secret)
        let evaluator = Evaluator(key: key)
        let x = encryptor.encryptInteger(1)
        let bit = encryptor.encryptInteger(1, range: 0...1)
        #expect(throws: TFHEError.valueRangeExceedsMessageSpace(lower: 0, upper: 16, plaintextModulus: 16)) {
            _ = try evaluator.apply({ $0 }, to: x + bit)
        }
        let small = encryptor.encryptInteger(1, range: 0...1)
        #expect(throws: TFHEError.noiseBudgetExceeded(norm: 6, budget: 5)) {
            _ = try evaluator.apply({ $0 }, to: 6 * small)
        }
        #expect(evaluator.bootstrapCount == 0)
    }
}
