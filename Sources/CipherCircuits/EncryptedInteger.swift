import TFHE

/// An n-bit two's-complement integer (1 ≤ n ≤ 64) whose bits are hybrid: each encrypted or
/// clear. Clear integers (weights, constants) are first-class operands of every operation.
public struct EncryptedInteger: Sendable {
    /// The bits, least significant first.
    public var bits: [HybridBit]

    /// An integer from its bits, least significant first.
    public init(bits: [HybridBit]) {
        precondition(!bits.isEmpty && bits.count <= 64, "width must be in 1...64")
        self.bits = bits
    }

    /// A clear integer of the given width (value reduced modulo 2^width).
    public static func plain(_ value: Int64, width: Int) -> EncryptedInteger {
        EncryptedInteger(bits: (0..<width).map { .plain((value >> Int64($0)) & 1 == 1) })
    }

    /// n.
    public var width: Int { bits.count }
    /// The sign bit.
    public var signBit: HybridBit { bits[width - 1] }

    /// The same value in `width` bits: sign-extended (free: the sign bit is shared) or truncated.
    public func resized(to width: Int, signed: Bool = true) -> EncryptedInteger {
        if width <= self.width { return EncryptedInteger(bits: Array(bits[0..<width])) }
        let fill = signed ? signBit : .plain(false)
        return EncryptedInteger(bits: bits + Array(repeating: fill, count: width - self.width))
    }

    /// self · 2^count modulo 2^width: clear zeros enter at the bottom.
    public func shiftedLeft(_ count: Int) -> EncryptedInteger {
        guard count > 0 else { return self }
        let shifted = Array(repeating: HybridBit.plain(false), count: Swift.min(count, width)) + bits
        return EncryptedInteger(bits: Array(shifted[0..<width]))
    }

    /// The value, if every bit is clear.
    public var plainValue: Int64? {
        var value: Int64 = 0
        for (i, bit) in bits.enumerated() {
            guard let b = bit.plainValue else { return nil }
            if b { value |= Int64(1) << Int64(i) }
        }
        return Self.signExtend(value, width: width)
    }

    /// The fewest two's-complement bits that hold every integer in [-bound, bound].
    public static func width(holding bound: Int) -> Int {
        Int.bitWidth - bound.magnitude.leadingZeroBitCount + 1
    }

    /// Reads the low `width` bits of a value as two's complement.
    public static func signExtend(_ value: Int64, width: Int) -> Int64 {
        width == 64 ? value : (value << Int64(64 - width)) >> Int64(64 - width)
    }
}

extension Encryptor {
    /// Encrypts every bit of `value` (two's complement, `width` bits).
    public func encrypt(_ value: Int64, width: Int) -> EncryptedInteger {
        EncryptedInteger(bits: (0..<width).map { .encrypted(encrypt(bit: (value >> Int64($0)) & 1 == 1)) })
    }

    /// Decrypts a bit.
    public func decrypt(_ bit: HybridBit) -> Bool {
        switch bit {
        case .plain(let value): value
        case .encrypted(let c): decryptBit(c)
        }
    }

    /// Decrypts an integer, read as two's complement.
    public func decrypt(_ integer: EncryptedInteger) -> Int64 {
        var value: Int64 = 0
        for (i, bit) in integer.bits.enumerated() where decrypt(bit) { value |= Int64(1) << Int64(i) }
        return EncryptedInteger.signExtend(value, width: integer.width)
    }
}
