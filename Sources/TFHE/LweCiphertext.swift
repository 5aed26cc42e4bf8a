import ObscuraMath

/// The LWE key a ciphertext is under.
public enum LweKey: Sendable, Hashable {
    /// The big key z (dimension k·N): fresh encryptions, bootstrap outputs, results.
    case big
    /// The small key s (dimension n), which blind rotation reads: an input here skips the key switch.
    case small

    /// The dimension of this key in a parameter set.
    public func dimension(_ parameters: TFHEParameters) -> Int {
        switch self {
        case .big: parameters.bigLweDimension
        case .small: parameters.lweDimension
        }
    }
}

/// An LWE ciphertext of dimension n: n+1 torus elements `[a_0 ... a_{n-1}, b]`, body last,
/// whose phase b - <a, s> is the encoded message plus noise.
///
/// Linear operations (addition, subtraction, negation, multiplication by a public integer,
/// addition of a public constant) need no key and no bootstrap.
public struct LweCiphertext: Sendable, Hashable {
    /// The mask followed by the body.
    public var storage: [UInt64]

    /// A ciphertext from its n+1 words.
    public init(storage: [UInt64]) {
        precondition(storage.count >= 2, "an LWE ciphertext has a mask and a body")
        self.storage = storage
    }

    /// The noiseless encryption (0, ..., 0, body) that anyone can form: constants, biases.
    public static func trivial(dimension: Int, body: UInt64) -> LweCiphertext {
        var storage = [UInt64](repeating: 0, count: dimension + 1)
        storage[dimension] = body
        return LweCiphertext(storage: storage)
    }

    /// n, the mask length.
    public var dimension: Int { storage.count - 1 }

    /// b.
    public var body: UInt64 {
        get { storage[storage.count - 1] }
        set { storage[storage.count - 1] = newValue }
    }

    /// self += other.
    @inlinable
    public mutating func add(_ other: LweCiphertext) {
        precondition(other.storage.count == storage.count, "dimension mismatch")
        storage.withUnsafeMutableBufferPointer { a in
            other.storage.withUnsafeBufferPointer { b in
                for i in 0..<a.count { a[i] &+= b[i] }
            }
        }
    }

    /// self -= other.
    @inlinable
    public mutating func subtract(_ other: LweCiphertext) {
        precondition(other.storage.count == storage.count, "dimension mismatch")
        storage.withUnsafeMutableBufferPointer { a in
            other.storage.withUnsafeBufferPointer { b in
                for i in 0..<a.count { a[i] &-= b[i] }
            }
        }
    }

    /// self += factor · other, with a public integer factor.
    @inlinable
    public mutating func add(_ other: LweCiphertext, times factor: Int64) {
        precondition(other.storage.count == storage.count, "dimension mismatch")
        let w = UInt64(bitPattern: factor)
        storage.withUnsafeMutableBufferPointer { a in
            other.storage.withUnsafeBufferPointer { b in
                for i in 0..<a.count { a[i] &+= b[i] &* w }
            }
        }
    }

    /// self = -self.
    @inlinable
    public mutating func negate() {
        storage.withUnsafeMutableBufferPointer { a in
            for i in 0..<a.count { a[i] = 0 &- a[i] }
        }
    }

    /// self *= factor, with a public integer factor.
    @inlinable
    public mutating func multiply(by factor: Int64) {
        let w = UInt64(bitPattern: factor)
        storage.withUnsafeMutableBufferPointer { a in
            for i in 0..<a.count { a[i] &*= w }
        }
    }

    /// Adds a public torus constant to the phase.
    @inlinable
    public mutating func addToBody(_ constant: UInt64) {
        storage[storage.count - 1] &+= constant
    }

    /// -self.
    public func negated() -> LweCiphertext {
        var copy = self
        copy.negate()
        return copy
    }

    /// self + other.
    public static func + (lhs: LweCiphertext, rhs: LweCiphertext) -> LweCiphertext {
        var copy = lhs
        copy.add(rhs)
        return copy
    }

    /// self - other.
    public static func - (lhs: LweCiphertext, rhs: LweCiphertext) -> LweCiphertext {
        var copy = lhs
        copy.subtract(rhs)
        return copy
    }

    /// factor · ciphertext.
    public static func * (factor: Int64, ciphertext: LweCiphertext) -> LweCiphertext {
        var copy = ciphertext
        copy.multiply(by: factor)
        return copy
    }
}

/// An LWE ciphertext stored as a 128-bit seed and its body: the mask is the CSPRNG stream of
/// the seed under the domain "lwe.mask". It is what a client uploads, 24 bytes instead of
/// 8·(n+1); the server expands it before computing.
public struct SeededLweCiphertext: Sendable, Hashable {
    /// The seed of the mask.
    public let seed: Seed128
    /// b.
    public let body: UInt64
    /// n.
    public let dimension: Int

    /// A seeded ciphertext from its parts.
    public init(seed: Seed128, body: UInt64, dimension: Int) {
        self.seed = seed
        self.body = body
        self.dimension = dimension
    }

    /// The mask a seed expands to.
    static func mask(seed: Seed128, dimension: Int) -> [UInt64] {
        var generator = CSPRNG(seed: seed, domain: "lwe.mask")
        var mask = [UInt64](repeating: 0, count: dimension + 1)
        mask.withUnsafeMutableBufferPointer { generator.fillUniform(UnsafeMutableBufferPointer(rebasing: $0[0..<dimension])) }
        return mask
    }

    /// The full ciphertext.
    public func expanded() -> LweCiphertext {
        var storage = Self.mask(seed: seed, dimension: dimension)
        storage[dimension] = body
        return LweCiphertext(storage: storage)
    }
}
