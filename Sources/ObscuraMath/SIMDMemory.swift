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
