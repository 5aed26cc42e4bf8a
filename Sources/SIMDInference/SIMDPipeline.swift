import Dispatch
import NeuralNet
import ObscuraMath
import RLWE

/// One batch end to end, as client and server would run it on two machines: the client makes
/// keys and encrypts, everything the server receives crosses as bytes (so the sizes are the
/// real upload and download), the server builds its own contexts from the plan, evaluates one
/// plaintext prime at a time, and the client decrypts. Used by `obscura bench simd` and the tests.
public enum SIMDPipeline {
    /// What one batch cost and returned.
    public struct Outcome: Sendable {
        /// Each image's exact scores (CRT-joined).
        public let scores: [[Int128]]
        /// The smallest noise budget left in any output ciphertext, in bits.
        public let budgetBits: Double
        /// Client seconds: key generation, encryption (with serialization), decryption.
        public let keySeconds, encryptSeconds, decryptSeconds: Double
        /// Server seconds: deserialization and evaluation of every prime.
        public let evaluateSeconds: Double
        /// Server seconds per step of the plan, summed over the primes.
        public let stepSeconds: [Double]
        /// Bytes: the seeded input ciphertexts, the output ciphertexts, the evaluation keys.
        public let uploadBytes, downloadBytes, evaluationKeyBytes: Int
    }

    /// Why a batch failed.
    public enum PipelineError: Error, Sendable, CustomStringConvertible {
        case client(SIMDClient.ClientError)
        case server(SIMDEvaluator.EvaluationError)
        case transport(RlweError)

        public var description: String {
            switch self {
            case .client(let e): "client: \(e)"
            case .server(let e): "server: \(e)"
            case .transport(let e): "bytes between client and server: \(e)"
            }
        }
    }

    /// Runs `images` (at most the plan's batch size) through `plan`. `progress(done, total)`
    /// counts the server's steps over all primes.
    public static func run(_ plan: SIMDPlan, images: [ArraySlice<Float>],
                           progress: (Int, Int) -> Void = { _, _ in }) throws(PipelineError) -> Outcome {
        func seconds<T>(_ body: () throws(PipelineError) -> T) throws(PipelineError) -> (T, Double) {
            let start = DispatchTime.now().uptimeNanoseconds
            let value = try body()
            return (value, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        // Client: keys and inputs, as bytes.
        let ((client, keyBytes), keySeconds) = try seconds { () throws(PipelineError) in
            let client: SIMDClient
            do throws(SIMDClient.ClientError) { client = try SIMDClient(plan: plan) } catch { throw .client(error) }
            return (client, client.evaluationKeys().map { $0.serialized() })
        }
        let (upload, encryptSeconds) = try seconds { () throws(PipelineError) in
            do throws(SIMDClient.ClientError) { return try client.encrypt(images).map { $0.map { $0.serialized() } } } catch { throw .client(error) }
        }
        // Server: its own contexts, the keys and one prime's inputs at a time.
        let ((download, stepSeconds), evaluateSeconds) = try seconds { () throws(PipelineError) in
            let contexts = plan.parameters.map { RlweContext(parameters: $0) }
            let keys: [EvaluationKey]
            do throws(RlweError) {
                keys = try zip(keyBytes, contexts).map { bytes, context throws(RlweError) in
                    try EvaluationKey(deserializing: bytes, context: context)
                }
            } catch { throw .transport(error) }
            let server: SIMDEvaluator
            do throws(SIMDEvaluator.EvaluationError) { server = try SIMDEvaluator(plan: plan, keys: keys) } catch { throw .server(error) }
            var download: [[[UInt8]]] = []
            var stepSeconds = [Double](repeating: 0, count: plan.steps.count)
            for prime in plan.parameters.indices {
                let inputs: [Ciphertext]
                do throws(RlweError) {
                    inputs = try upload[prime].map { bytes throws(RlweError) in
                        try SeededCiphertext(deserializing: bytes, context: contexts[prime]).expanded()
                    }
                } catch { throw .transport(error) }
                let outputs: [Ciphertext]
                do throws(SIMDEvaluator.EvaluationError) {
                    outputs = try server.evaluate(prime: prime, inputs: inputs) { step, seconds in
                        stepSeconds[step] += seconds
                        progress(prime * plan.steps.count + step + 1, plan.parameters.count * plan.steps.count)
                    }
                } catch { throw .server(error) }
                download.append(outputs.map { $0.serialized() })
            }
            return (download, stepSeconds)
        }
        // Client: the scores.
        let ((scores, budget), decryptSeconds) = try seconds { () throws(PipelineError) in
            let outputs: [[Ciphertext]]
            do throws(RlweError) {
                outputs = try download.enumerated().map { prime, cts throws(RlweError) in
                    try cts.map { bytes throws(RlweError) in try Ciphertext(deserializing: bytes, context: client.contexts[prime]) }
                }
            } catch { throw .transport(error) }
            do throws(SIMDClient.ClientError) { return try client.decrypt(outputs, imageCount: images.count) } catch { throw .client(error) }
        }
        return Outcome(scores: scores, budgetBits: budget, keySeconds: keySeconds, encryptSeconds: encryptSeconds,
                       decryptSeconds: decryptSeconds, evaluateSeconds: evaluateSeconds, stepSeconds: stepSeconds,
                       uploadBytes: upload.joined().reduce(0) { $0 + $1.count },
                       downloadBytes: download.joined().reduce(0) { $0 + $1.count },
                       evaluationKeyBytes: keyBytes.reduce(0) { $0 + $1.count })
    }
}
