import Testing
@testable import RLWE

/// Word arithmetic, primes, the NTT and RNS conversions, against direct computation.
struct ArithmeticTests {
    @Test("Barrett and Shoup reductions equal % on random operands", arguments: [UInt64(0xffffffffffc0001), 1_152_921_504_606_584_833, 65537, 0x1fff_ffff_ffe0_0001])
    func reductions(q: UInt64) {
        let m = Modulus(q)
        var rng = SeededGenerator(seed: q)
        for _ in 0..<20_000 {
            let a = rng.next() % q, b = rng.next() % q, x = rng.next()
            let p = a.multipliedFullWidth(by: b)
            #expect(m.multiply(a, b) == q.dividingFullWidth((p.high, p.low)).remainder)
            #expect(m.reduce(x) == x % q)
            #expect(m.multiply(x, by: b, shoup: m.shoup(b)) == q.dividingFullWidth(x.multipliedFullWidth(by: b)).remainder)
            let lazy = m.multiplyLazy(x, by: b, shoup: m.shoup(b))
            #expect(lazy < 2 * q && lazy % q == q.dividingFullWidth(x.multipliedFullWidth(by: b)).remainder)
        }
    }

    @Test("Miller–Rabin agrees with trial division below 2^20 and on known primes")
    func primality() {
        func trial(_ n: UInt64) -> Bool {
            if n < 2 { return false }
            var d: UInt64 = 2
            while d * d <= n { if n % d == 0 { return false }; d += 1 }
            return true
        }
        for n in UInt64(0)..<(1 << 14) { #expect(NTTPrimes.isPrime(n) == trial(n)) }
        #expect(NTTPrimes.isPrime((1 << 61) - 1))
        #expect(!NTTPrimes.isPrime(3_215_031_751))            // strong pseudoprime to bases 2, 3, 5, 7
        #expect(!NTTPrimes.isPrime(3_825_123_056_546_413_051)) // … to the first nine prime bases
        let generated = NTTPrimes.generate(count: 4, bits: 54, polynomialSize: 8192)
        #expect(generated.allSatisfy { $0 < 1 << 54 && $0 % 16384 == 1 && NTTPrimes.isPrime($0) })
        #expect(generated == generated.sorted(by: >))
    }

    @Test("SEAL's NTT known answers for q = 2^60 − 2^18 + 1")
    func sealKnownAnswers() {
        let q = Modulus(0xffffffffffc0001)
        let two = NTTTables(polynomialSize: 2, modulus: q)
        #expect(two.root == 288_794_978_602_139_552)
        var a: [UInt64] = [1, 0]
        a.withUnsafeMutableBufferPointer { two.forward($0.baseAddress!) }
        #expect(a == [1, 1])
        a = [1, 1]
        a.withUnsafeMutableBufferPointer { two.forward($0.baseAddress!) }
        #expect(a == [288_794_978_602_139_553, 864_126_526_004_445_282])
        let four = NTTTables(polynomialSize: 4, modulus: q)
        #expect(four.roots == [1, 288_794_978_602_139_552, 178_930_308_976_060_547, 748_001_537_669_050_592])
    }

    @Test("Output index i of the forward NTT is a(ψ^(2·rev(i)+1))")
    func evaluationPoints() {
        let n = 64
        let q = Modulus(NTTPrimes.generate(count: 1, bits: 50, polynomialSize: n)[0])
        let tables = NTTTables(polynomialSize: n, modulus: q)
        var rng = SeededGenerator(seed: 7)
        let a = (0..<n).map { _ in rng.next() % q.value }
        var transformed = a
        transformed.withUnsafeMutableBufferPointer { tables.forward($0.baseAddress!) }
        for i in 0..<n {
            let x = q.power(tables.root, UInt64(tables.evaluationExponent(ofIndex: i)))
            var value: UInt64 = 0, power: UInt64 = 1
            for k in 0..<n { value = q.add(value, q.multiply(a[k], power)); power = q.multiply(power, x) }
            #expect(transformed[i] == value)
        }
    }

    /// The negacyclic schoolbook product: X^N = −1.
    static func schoolbook(_ a: [UInt64], _ b: [(index: Int, value: UInt64)], q: Modulus) -> [UInt64] {
        let n = a.count
        var out = [UInt64](repeating: 0, count: n)
        for (j, bj) in b {
            for i in 0..<n {
                let p = q.multiply(a[i], bj), k = i + j
                if k < n { out[k] = q.add(out[k], p) } else { out[k - n] = q.subtract(out[k - n], p) }
            }
        }
        return out
    }

    @Test("NTT products equal the schoolbook negacyclic product for every supported N",
          arguments: [16, 256, 1024, 4096, 8192, 16384, 32768])
    func nttProduct(n: Int) {
        for bits in [40, 54, 61] {
            let q = Modulus(NTTPrimes.generate(count: 1, bits: bits, polynomialSize: n)[0])
            let tables = NTTTables(polynomialSize: n, modulus: q)
            var rng = SeededGenerator(seed: UInt64(n * bits))
            let a = (0..<n).map { _ in rng.next() % q.value }
            // Dense × dense up to N = 1024; dense × 24-term sparse above (still every coefficient).
            let b: [(index: Int, value: UInt64)] = n <= 1024
                ? (0..<n).map { ($0, rng.next() % q.value) }
                : (0..<24).map { _ in (Int(rng.next() % UInt64(n)), rng.next() % q.value) }
            var dense = [UInt64](repeating: 0, count: n)
            for (i, v) in b { dense[i] = q.add(dense[i], v) }
            var x = a, y = dense
            x.withUnsafeMutableBufferPointer { tables.forward($0.baseAddress!) }
            y.withUnsafeMutableBufferPointer { tables.forward($0.baseAddress!) }
            var z = zip(x, y).map { q.multiply($0, $1) }
            z.withUnsafeMutableBufferPointer { tables.inverse($0.baseAddress!) }
            #expect(z == Self.schoolbook(a, b, q: q))
            // Round trip, and lazy forward ≡ full forward mod q.
            var lazy = a
            lazy.withUnsafeMutableBufferPointer { tables.forwardLazy($0.baseAddress!) }
            #expect(lazy.allSatisfy { $0 < 4 * q.value })
            #expect(lazy.map { $0 % q.value } == x)
            x.withUnsafeMutableBufferPointer { tables.inverse($0.baseAddress!) }
            #expect(x == a)
        }
    }

    @Test("RNS composition and exact base conversion equal big-integer arithmetic")
    func rnsConversion() {
        let n = 16
        let source = RNSBasis(NTTPrimes.generate(count: 4, bits: 60, polynomialSize: n).map(Modulus.init))
        let target = NTTPrimes.generate(count: 3, bits: 61, polynomialSize: n).map(Modulus.init)
        let converter = BaseConverter(from: source, to: target)
        let q = source.product
        var rng = SeededGenerator(seed: 11)
        for trial in 0..<400 {
            // A centered value of up to 239 bits (or tiny), as residues.
            let magnitude = BigUInt(words: (0..<4).map { i in i < 3 || trial % 2 == 0 ? rng.next() : 0 }).remainder(dividingBy: q.shifted(right: 2))
            let negative = trial % 3 == 0
            let value = negative ? q - magnitude : magnitude
            let residues = source.moduli.map { value.remainder(dividingBy: $0.value) }
            #expect(source.compose(residues) == value)
            var scratch = [UInt64](repeating: 0, count: 4)
            let centered = residues.withUnsafeBufferPointer { r in
                scratch.withUnsafeMutableBufferPointer { source.centeredValue(r.baseAddress!, stride: 1, scratch: $0.baseAddress!) }
            }
            let expected = (negative ? -1.0 : 1.0) * magnitude.doubleValue
            #expect(abs(centered - expected) <= abs(expected) * 0x1p-50)
            var out = [UInt64](repeating: 0, count: 3)
            residues.withUnsafeBufferPointer { r in
                out.withUnsafeMutableBufferPointer { converter.convert(r.baseAddress!, into: $0.baseAddress!, count: 1) }
            }
            for (j, p) in target.enumerated() {
                let m = magnitude.remainder(dividingBy: p.value)
                #expect(out[j] == (negative ? p.negate(m) : m))
            }
        }
    }
}

/// SplitMix64: reproducible test inputs (not for secrets).
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
