import TFHE

/// A bit of a hybrid circuit: known to the server in the clear (a weight, a constant, a
/// padding zero) or encrypted. The main paper's central trick (its eqs. 4-8) is that a gate
/// with a clear operand never needs a bootstrap: it becomes a copy, a negation or a constant.
public enum HybridBit: Sendable {
    /// A bit the server knows.
    case plain(Bool)
    /// A ±1/8-encoded bit under the client's key.
    case encrypted(LweCiphertext)

    /// The clear value, if the bit is not encrypted.
    public var plainValue: Bool? {
        if case .plain(let value) = self { return value }
        return nil
    }
}

/// Evaluates hybrid circuits with an ``Evaluator`` and counts the bootstraps they cost.
///
/// Every gate first looks for a clear operand: the paper's h-xnor, h-xor and h-and (eqs. 4-6),
/// NOT (eq. 7) and constants (eq. 8) are the clear-operand cases of the gates below, and cost
/// nothing. Only a gate between two encrypted bits bootstraps. Not `Sendable`: one per thread.
public final class CircuitEvaluator {
    /// The gate evaluator (and its key).
    public let gates: Evaluator

    /// A circuit evaluator with its own scratch memory.
    public init(key: EvaluationKey) {
        gates = Evaluator(key: key)
    }

    /// A circuit evaluator on an existing gate evaluator (one per worker thread).
    public init(gates: Evaluator) {
        self.gates = gates
    }

    /// Bootstraps spent so far.
    public var bootstrapCount: Int { gates.bootstrapCount }

    /// ¬a, free (eq. 7).
    public func not(_ a: HybridBit) -> HybridBit {
        switch a {
        case .plain(let value): .plain(!value)
        case .encrypted(let c): .encrypted(gates.not(c))
        }
    }

    /// a ⊕ b; with a clear operand a copy or a negation (h-xor, eq. 5).
    public func xor(_ a: HybridBit, _ b: HybridBit) -> HybridBit {
        switch (a, b) {
        case (.plain(let x), .plain(let y)): .plain(x != y)
        case (.encrypted, .plain(let y)): y ? not(a) : a
        case (.plain(let x), .encrypted): x ? not(b) : b
        case (.encrypted(let x), .encrypted(let y)): .encrypted(gates.xor(x, y))
        }
    }

    /// ¬(a ⊕ b) (h-xnor, eq. 4).
    public func xnor(_ a: HybridBit, _ b: HybridBit) -> HybridBit { not(xor(a, b)) }

    /// a ∧ b; with a clear operand a copy or a constant (h-and, eq. 6).
    public func and(_ a: HybridBit, _ b: HybridBit) -> HybridBit {
        switch (a, b) {
        case (.plain(let x), _): x ? b : .plain(false)
        case (_, .plain(let y)): y ? a : .plain(false)
        case (.encrypted(let x), .encrypted(let y)): .encrypted(gates.and(x, y))
        }
    }

    /// a ∨ b.
    public func or(_ a: HybridBit, _ b: HybridBit) -> HybridBit { not(and(not(a), not(b))) }

    /// condition ? whenTrue : whenFalse; two bootstraps when all three are encrypted.
    public func mux(_ condition: HybridBit, _ whenTrue: HybridBit, _ whenFalse: HybridBit) -> HybridBit {
        if let c = condition.plainValue { return c ? whenTrue : whenFalse }
        switch (whenTrue, whenFalse) {
        case (.plain(let t), .plain(let f)): return t == f ? .plain(t) : (t ? condition : not(condition))
        case (.plain(let t), _): return t ? or(condition, whenFalse) : and(not(condition), whenFalse)
        case (_, .plain(let f)): return f ? or(not(condition), whenTrue) : and(condition, whenTrue)
        case (.encrypted(let t), .encrypted(let f)):
            guard case .encrypted(let c) = condition else { fatalError("unreachable") }
            return .encrypted(gates.mux(c, t, f))
        }
    }

    /// The majority of three bits: one bootstrap when all are encrypted, otherwise an AND or
    /// an OR of the other two.
    public func majority(_ a: HybridBit, _ b: HybridBit, _ c: HybridBit) -> HybridBit {
        switch (a, b, c) {
        case (.plain(let x), _, _): x ? or(b, c) : and(b, c)
        case (_, .plain(let y), _): y ? or(a, c) : and(a, c)
        case (_, _, .plain(let z)): z ? or(a, b) : and(a, b)
        case (.encrypted(let x), .encrypted(let y), .encrypted(let z)): .encrypted(gates.majority(x, y, z))
        }
    }
}
