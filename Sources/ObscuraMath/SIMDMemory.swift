/// Unaligned SIMD loads and stores on raw buffers: the hot loops work on `[Double]` storage
/// that Swift does not promise to align to 32 bytes.
@inlinable @inline(__always)
public func load4(_ pointer: UnsafePointer<Double>) -> SIMD4<Double> {
    UnsafeRawPointer(pointer).loadUnaligned(as: SIMD4<Double>.self)
}

@inlinable @inline(__always)
public func load4(_ pointer: UnsafeMutablePointer<Double>) -> SIMD4<Double> {
    UnsafeRawPointer(pointer).loadUnaligned(as: SIMD4<Double>.self)
}

@inlinable @inline(__always)
public func store4(_ pointer: UnsafeMutablePointer<Double>, _ value: SIMD4<Double>) {
    UnsafeMutableRawPointer(pointer).storeBytes(of: value, as: SIMD4<Double>.self)
}

/// a·b + c·d with the first product fused into the addition: one multiply and one FMA, the
/// shape of every complex product in the transforms (Swift does not contract `a * b + c`).
@inlinable @inline(__always)
public func mulAdd(_ a: SIMD4<Double>, _ b: SIMD4<Double>, _ c: SIMD4<Double>, _ d: SIMD4<Double>) -> SIMD4<Double> {
    (c * d).addingProduct(a, b)
}

/// a·b − c·d, fused like ``mulAdd(_:_:_:_:)``.
@inlinable @inline(__always)
public func mulSub(_ a: SIMD4<Double>, _ b: SIMD4<Double>, _ c: SIMD4<Double>, _ d: SIMD4<Double>) -> SIMD4<Double> {
    (-(c * d)).addingProduct(a, b)
}
