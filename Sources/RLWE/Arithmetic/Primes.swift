/// NTT-friendly primes: q ≡ 1 (mod 2N), so that Z_q holds a primitive 2N-th root of unity and
/// X^N + 1 splits into linear factors.
public enum NTTPrimes {
    /// Deterministic Miller–Rabin for 64-bit odd n: these twelve bases decide every n < 2^64
    /// (Sorenson and Webster, "Strong pseudoprimes to twelve prime bases", 2017).
    public static func isPrime(_ n: UInt64) -> Bool {
        if n < 2 { return false }
        for p: UInt64 in [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37] {
            if n == p { return true }
            if n % p == 0 { return false }
        }
        var d = n - 1, s = 0
        while d & 1 == 0 { d >>= 1; s += 1 }
        func mulmod(_ a: UInt64, _ b: UInt64) -> UInt64 {
            let p = a.multipliedFullWidth(by: b)
            return n.dividingFullWidth((p.high, p.low)).remainder
        }
        witness: for a: UInt64 in [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37] {
            var x: UInt64 = 1, b = a % n, e = d
            while e > 0 {
                if e & 1 == 1 { x = mulmod(x, b) }
                b = mulmod(b, b)
                e >>= 1
            }
            if x == 1 || x == n - 1 { continue }
            for _ in 1..<max(s, 1) {
                x = mulmod(x, x)
                if x == n - 1 { continue witness }
            }
            return false
        }
        return true
    }

    /// The `count` largest primes q < 2^bits with q ≡ 1 (mod 2N), in decreasing order, skipping
    /// any in `excluding`; fewer if there are not that many of exactly `bits` bits. `bits` is
    /// from 2 to 61 (the NTT's lazy ranges need q < 2^62); outside that, none.
    public static func generate(count: Int, bits: Int, polynomialSize n: Int, excluding: Set<UInt64> = []) -> [UInt64] {
        guard (2...61).contains(bits), n >= 1, UInt64(2 * n) < UInt64(1) << UInt64(bits) else { return [] }
        let step = UInt64(2 * n), floor = UInt64(1) << UInt64(bits - 1)
        var candidate = ((UInt64(1) << UInt64(bits)) - 1) / step * step + 1
        if candidate >= UInt64(1) << UInt64(bits) { candidate -= step }
        var primes: [UInt64] = []
        while primes.count < count && candidate > floor {
            if !excluding.contains(candidate) && isPrime(candidate) { primes.append(candidate) }
            candidate -= step
        }
        return primes
    }

    /// The smallest x^((q−1)/2N), x = 2, 3, …, that is a primitive 2N-th root of unity mod q:
    /// deterministic, because seeded masks are sampled in the NTT domain this root defines.
    public static func primitiveRoot(order twoN: Int, modulus q: Modulus) -> UInt64 {
        precondition((q.value - 1) % UInt64(twoN) == 0, "q ≢ 1 mod 2N")
        // x^((q−1)/2N) has order exactly 2N iff x is a quadratic non-residue (2N is a power of
        // two dividing q − 1); half of all x are, so the search ends quickly for every prime.
        var x: UInt64 = 2
        while true {
            let root = q.power(x, (q.value - 1) / UInt64(twoN))
            if q.power(root, UInt64(twoN / 2)) == q.value - 1 {
                // Every primitive 2N-th root is root^odd; take the smallest for a canonical choice.
                var best: UInt64 = .max, power = root
                let square = q.multiply(root, root)
                for _ in 0..<(twoN / 2) {
                    best = min(best, power)
                    power = q.multiply(power, square)
                }
                return best
            }
            x += 1
        }
    }
}
