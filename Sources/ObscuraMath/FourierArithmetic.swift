/// Pointwise arithmetic on split complex vectors (the external product has its own fused,
/// register-accumulating loop in `FourierGgswCiphertext`).
public enum FourierArithmetic {
    /// out = a ⊙ b over `count` complex numbers (`count` a multiple of 4).
    @inlinable @inline(__always)
    public static func multiply(
        outRe: UnsafeMutablePointer<Double>, outIm: UnsafeMutablePointer<Double>,
        aRe: UnsafePointer<Double>, aIm: UnsafePointer<Double>,
        bRe: UnsafePointer<Double>, bIm: UnsafePointer<Double>, count: Int
    ) {
        var j = 0
        while j < count {
            let ar = load4(aRe + j), ai = load4(aIm + j)
            let br = load4(bRe + j), bi = load4(bIm + j)
            store4(outRe + j, mulSub(ar, br, ai, bi))
            store4(outIm + j, mulAdd(ar, bi, ai, br))
            j &+= 4
        }
    }
}
