import Dispatch
import ObscuraMath
import Testing
@testable import CipherCircuits
@testable import TFHE

/// Keys per parameter set, made once: the exhaustive tests run on the INSECURE test set (real
/// TFHE arithmetic, fast parameters, named so and never a default); the random 8- and 16-bit
/// tests run on the secure gate set.
enum Keys {
    static let insecure = make(.insecureTestOnly)
    static let secure = make(.booleanGates)

    static func make(_ parameters: TFHEParameters) -> (SecretKey, EvaluationKey) {
        let secret = SecretKey(parameters: parameters, deterministicSeed: Seed128(low: 3, high: 4))
        return (secret, EvaluationKey(secret.makeEvaluationKey(deterministicSeed: Seed128(low: 5, high: 6))))
    }
}

/// Runs `body` for every pair of signed 4-bit values on all cores, each worker with its own
/// circuit evaluator, and returns the number of failures.
func forAllPairs(width: Int = 4, _ body: @Sendable @escaping (CircuitEvaluator, inout Encryptor, Int64, Int64) -> Bool) -> Int {
    let (secret, key) = Keys.insecure
    let values = Array(Int64(-(1 << (width - 1)))..<Int64(1 << (width - 1)))
    let pairs = values.flatMap { x in values.map { (x, $0) } }
    let results: [Bool] = key.parallelMap(count: pairs.count) { evaluator, i in
        let circuit = CircuitEvaluator(key: key)
        var encryptor = Encryptor(secretKey: secret)
        return body(circuit, &encryptor, pairs[i].0, pairs[i].1)
    }
    return results.filter { !$0 }.count
}

func wrap(_ value: Int64, _ width: Int) -> Int64 { EncryptedInteger.signExtend(value, width: width) }

struct ExhaustiveFourBitTests {
    @Test("add, subtract and multiply, both methods, every pair", arguments: CircuitMethod.allCases)
    func arithmetic(method: CircuitMethod) {
        let failures = forAllPairs { circuit, encryptor, a, b in
            let x = encryptor.encrypt(a, width: 4), y = encryptor.encrypt(b, width: 4)
            return encryptor.decrypt(circuit.add(x, y, method: method)) == wrap(a + b, 4)
                && encryptor.decrypt(circuit.subtract(x, y, method: method)) == wrap(a - b, 4)
                && encryptor.decrypt(circuit.multiply(x, y, method: method)) == wrap(a * b, 4)
                && encryptor.decrypt(circuit.multiply(x, byPlain: b, method: method)) == wrap(a * b, 4)
                && encryptor.decrypt(circuit.add(x, .plain(b, width: 4), method: method)) == wrap(a + b, 4)
        }
        #expect(failures == 0)
    }

    @Test("compare, less-than, equality and max, both methods, every pair", arguments: CircuitMethod.allCases)
    func comparisons(method: CircuitMethod) {
        let failures = forAllPairs { circuit, encryptor, a, b in
            let x = encryptor.encrypt(a, width: 4), y = encryptor.encrypt(b, width: 4)
            return encryptor.decrypt(circuit.greaterThan(x, y, method: method)) == (a > b)
                && encryptor.decrypt(circuit.lessThan(x, y, method: method)) == (a < b)
                && encryptor.decrypt(circuit.equal(x, y)) == (a == b)
                && encryptor.decrypt(circuit.maximum(x, y, method: method)) == max(a, b)
                && encryptor.decrypt(circuit.greaterThan(x, .plain(b, width: 4), method: method)) == (a > b)
        }
        #expect(failures == 0)
    }

    @Test("ReLU, negation, ep() and a 2×2 max window on every 4-bit value")
    func unary() {
        let failures = forAllPairs { circuit, encryptor, a, b in
            guard b == 0 else { return true }
            let x = encryptor.encrypt(a, width: 4)
            let window = [a, a &+ 3, -a, 2].map { encryptor.encrypt(wrap($0, 4), width: 4) }
            return encryptor.decrypt(circuit.relu(x, method: .paper)) == max(a, 0)
                && encryptor.decrypt(circuit.relu(x, method: .fast)) == max(a, 0)
                && encryptor.decrypt(circuit.negate(x)) == wrap(-a, 4)
                && encryptor.decrypt(circuit.extend(x.bits[0], width: 6)) == (a & 1 == 1 ? 1 : -1)
                && encryptor.decrypt(circuit.maximum(ofWindow: window)) == [a, wrap(a + 3, 4), wrap(-a, 4), 2].max()!
        }
        #expect(failures == 0)
    }
}

struct BootstrapCountTests {
    @Test("hybrid gates with a clear operand cost nothing")
    func hybridGatesAreFree() {
        let (secret, key) = Keys.insecure
        let encryptor = Encryptor(secretKey: secret)
        let circuit = CircuitEvaluator(key: key)
        let bit = HybridBit.encrypted(encryptor.encrypt(bit: true))
        for p in [false, true] {
            _ = circuit.xor(bit, .plain(p)); _ = circuit.xnor(.plain(p), bit); _ = circuit.and(bit, .plain(p))
            _ = circuit.or(.plain(p), bit); _ = circuit.mux(.plain(p), bit, bit); _ = circuit.not(bit)
            _ = circuit.majority(bit, bit, .plain(p))
        }
        #expect(circuit.bootstrapCount == 2)   // the two majorities reduce to one encrypted AND/OR each
        _ = circuit.extend(bit, width: 20)
        _ = circuit.add(.plain(3, width: 8), .plain(4, width: 8))
        #expect(circuit.bootstrapCount == 2)
    }

    @Test("bootstrap counts per operation at 8 bits")
    func counts() {
        let (secret, key) = Keys.insecure
        let encryptor = Encryptor(secretKey: secret)
        let circuit = CircuitEvaluator(key: key)
        let x = encryptor.encrypt(-77, width: 8), y = encryptor.encrypt(45, width: 8)
        func cost(_ body: () -> Void) -> Int {
            let before = circuit.bootstrapCount
            body()
            return circuit.bootstrapCount - before
        }
        #expect(cost { _ = circuit.greaterThan(x, y, method: .fast) } == 8)
        // 8 XORs (v), 7 ANDs (¬v ∧ t; free at bit 0), 8 ANDs (x ∧ ¬y), 7 XORs, 2 for the sign.
        #expect(cost { _ = circuit.greaterThan(x, y, method: .paper) } == 32)
        #expect(cost { _ = circuit.relu(x, method: .fast) } == 7)
        #expect(cost { _ = circuit.relu(x, method: .paper) } == 8)
        #expect(cost { _ = circuit.maximum(x, y, method: .fast) } == 8 + 16)
        // Bit 0 has a clear carry in (XOR + AND); every other bit is a majority and a threshold.
        #expect(cost { _ = circuit.add(x, y, method: .fast) } == 2 + 7 * 2)
        #expect(cost { _ = circuit.add(x, y, method: .paper) } == 2 + 7 * 5)
    }
}

struct RandomWideTests {
    @Test("random 8- and 16-bit operands on the secure gate set", arguments: [8, 16])
    func randomWide(width: Int) {
        let (secret, key) = Keys.secure
        var rng = CSPRNG(seed: Seed128(low: UInt64(width), high: 9), domain: "circuits")
        let range = UInt64(1) << UInt64(width)
        let pairs = (0..<2).map { _ in
            (wrap(Int64(rng.next() % range), width), wrap(Int64(rng.next() % range), width))
        }
        let failures: [String] = key.parallelMap(count: pairs.count) { _, i in
            let circuit = CircuitEvaluator(key: key)
            let encryptor = Encryptor(secretKey: secret)
            let (a, b) = pairs[i]
            let x = encryptor.encrypt(a, width: width), y = encryptor.encrypt(b, width: width)
            var wrong: [String] = []
            if encryptor.decrypt(circuit.add(x, y)) != wrap(a + b, width) { wrong.append("add") }
            if encryptor.decrypt(circuit.greaterThan(x, y)) != (a > b) { wrong.append("gt fast") }
            if encryptor.decrypt(circuit.greaterThan(x, y, method: .paper)) != (a > b) { wrong.append("gt paper") }
            if encryptor.decrypt(circuit.maximum(x, y)) != max(a, b) { wrong.append("max") }
            if encryptor.decrypt(circuit.relu(x)) != max(a, 0) { wrong.append("relu") }
            if encryptor.decrypt(circuit.multiply(x, byPlain: b)) != wrap(a &* b, width) { wrong.append("mul plain") }
            if width == 8, encryptor.decrypt(circuit.multiply(x, y)) != wrap(a &* b, width) { wrong.append("mul") }
            return wrong.joined(separator: ",")
        }
        let allPassed = failures.allSatisfy { $0.isEmpty }
        #expect(allPassed, "\(failures)")
    }

    @Test("binarized convolution output equals the plaintext reference, both methods")
    func binarizedConvolution() {
        let (secret, key) = Keys.insecure
        let encryptor = Encryptor(secretKey: secret)
        var rng = CSPRNG(seed: Seed128(low: 77, high: 1), domain: "conv")
        let side = 7
        let image = (0..<(side * side)).map { _ in rng.next() & 1 == 1 }
        let filter = BinarizedConvolution(weights: (0..<25).map { _ in rng.next() & 1 == 1 }, size: 5, accumulatorWidth: 20)
        let encrypted = image.map { HybridBit.encrypted(encryptor.encrypt(bit: $0)) }
        let circuit = CircuitEvaluator(key: key)
        for (row, column) in [(0, 0), (2, 1), (1, 2)] {
            let expected = filter.reference(image: image, side: side, row: row, column: column)
            for method in CircuitMethod.allCases {
                let output = filter.output(image: encrypted, side: side, row: row, column: column, circuit: circuit, method: method)
                #expect(output.width == 20)
                #expect(encryptor.decrypt(output) == expected, "\(method) at \(row),\(column)")
            }
        }
    }
}

struct ParallelCircuitTests {
    @Test("parallel ReLU and max equal the sequential circuits, bootstrap for bootstrap")
    func parallelMatchesSequential() {
        let (secret, key) = Keys.insecure
        let encryptor = Encryptor(secretKey: secret)
        let parallel = ParallelCircuits(key: key)
        for (a, b) in [(-77, 45), (100, -3), (5, 5)] as [(Int64, Int64)] {
            let x = encryptor.encrypt(a, width: 8), y = encryptor.encrypt(b, width: 8)
            let relu = parallel.relu(x)
            #expect(encryptor.decrypt(relu.value) == max(a, 0))
            #expect(relu.bootstraps == 7)
            let maximum = parallel.maximum(x, y)
            #expect(encryptor.decrypt(maximum.value) == max(a, b))
            #expect(maximum.bootstraps == 8 + 16)
        }
    }
}
