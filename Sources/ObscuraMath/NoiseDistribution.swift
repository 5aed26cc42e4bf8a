#if canImport(FoundationEssentials)
import FoundationEssentials
#endif

/// The distribution of the error term added at encryption, in integer units of a 2^64 torus.
public enum NoiseDistribution: Sendable, Hashable, CustomStringConvertible {
    /// TUniform(b): every integer in [-2^b, 2^b] with probability 2^-(b+1), the two end points
    /// with half that. Bounded, exact and sampled in constant time (tfhe-rs's default since 0.9).
    case tUniform(log2Bound: Int)

    /// The variance in squared torus units (fractions of 1).
    public var torusVariance: Double {
        switch self {
        case .tUniform(let b):
            let integerVariance = (Double.pow2(2 * b + 1) + 1) / 6
            return integerVariance * Double.pow2(-128)
        }
    }

    public var description: String {
        switch self {
        case .tUniform(let b): "TUniform(\(b))"
        }
    }

    /// Draws one error term as a 64-bit torus element.
    @inlinable
    public func sample(using generator: inout CSPRNG) -> UInt64 {
        switch self {
        case .tUniform(let b):
            // b+2 random bits r: (r >> 1) + (r & 1) - 2^b has exactly the TUniform law.
            let r = generator.next() & ((UInt64(1) << UInt64(b + 2)) &- 1)
            return (r >> 1) &+ (r & 1) &- (UInt64(1) << UInt64(b))
        }
    }
}

extension Double {
    /// 2^exponent, exactly.
    @inlinable
    public static func pow2(_ exponent: Int) -> Double {
        Double(sign: .plus, exponent: exponent, significand: 1)
    }
}

