import Dispatch
import NeuralNet
import ObscuraMath
import RLWE

/// Images end to end, as client and server would run them on two machines: the client makes
/// keys and encrypts, everything the server receives crosses as bytes (so the sizes are the
/// real upload and download), the server builds its own contexts from the plan and evaluates,
/// and the client decrypts. Throughput mode sends the images as batches of up to N; latency
/// mode sends them one at a time, the server evaluating the primes in parallel. Used by
/// `obscura bench simd` and the tests.
public enum SIMDPipeline {
    /// What the images cost and returned.
    public struct Outcome: Sendable {
        /// Each image's exact scores (CRT-joined).
        public let scores: [[Int128]]
        /// The smallest noise budget left in any output ciphertext, in bits.
        public let budgetBits: Double
        /// Client seconds: key generation, encryption (with serialization), decryption.
        public let keySeconds, encryptSeconds, decryptSeconds: Double
        /// Server seconds per evaluation (a batch, or one image in latency mode): deserializing
        /// the inputs, evaluating every prime, serializing the outputs.
        public let evaluationSeconds: [Double]
        /// Server seconds to load the evaluation keys and encode the plan's plaintexts (once).
        public let serverSetupSeconds: Double
        /// Server seconds per step of the plan, summed over primes and evaluations.
        public let stepSeconds: [Double]
        /// Bytes: the seeded input ciphertexts, the output ciphertexts, the evaluation keys.
        public let uploadBytes, downloadBytes, evaluationKeyBytes: Int

        /// All evaluations' seconds.
        public var evaluateSeconds: Double { evaluationSeconds.reduce(0, +) }
    }

    /// Why a batch failed.
    public enum PipelineError: Error, Sendable, CustomStringConvertible {
        case client(SIMDClient.ClientError)
        case server(SIMDEvaluator.EvaluationError)

        public var description: String {
            switch self {
            case .client(let e): "client: \(e)"
            case .server(let e): "server: \(e)"
            }
        }
    }

    /// Runs `images` through `plan`, with the same byte objects (``SIMDWire``) and calls the
    /// service makes. `progress(done, total)` counts evaluations.
    public static func run(_ plan: SIMDPlan, images: [ArraySlice<Float>],
                           progress: (Int, Int) -> Void = { _, _ in }) throws(PipelineError) -> Outcome {
        // Client: keys, as bytes.
        var clock = Stopwatch()
        let client: SIMDClient
        do throws(SIMDClient.ClientError) { client = try SIMDClient(plan: plan) } catch { throw .client(error) }
        let keyBytes = client.evaluationKeyBytes()
        let keySeconds = clock.lap()

        // Server: its own contexts from the plan, the keys, the plan's plaintexts.
        let server: SIMDEvaluator
        do throws(SIMDEvaluator.EvaluationError) { server = try SIMDEvaluator(plan: plan, keyBytes: keyBytes) } catch { throw .server(error) }
        let serverSetupSeconds = clock.lap()

        var scores: [[Int128]] = [], budget = Double.infinity
        var encryptSeconds = 0.0, decryptSeconds = 0.0, evaluationSeconds: [Double] = []
        var stepSeconds = [Double](repeating: 0, count: plan.steps.count)
        var uploadBytes = 0, downloadBytes = 0
        let batches = stride(from: 0, to: images.count, by: plan.batchSize).map { Array(images[$0..<min($0 + plan.batchSize, images.count)]) }
        for (index, batch) in batches.enumerated() {
            clock.lap()
            let upload: [UInt8]
            do throws(SIMDClient.ClientError) { upload = try client.encryptForUpload(batch) } catch { throw .client(error) }
            encryptSeconds += clock.lap()
            uploadBytes += upload.count

            let evaluation: SIMDEvaluator.Evaluation
            do throws(SIMDEvaluator.EvaluationError) { evaluation = try server.evaluate(upload: upload) } catch { throw .server(error) }
            for (step, s) in evaluation.stepSeconds.enumerated() { stepSeconds[step] += s }
            evaluationSeconds.append(clock.lap())
            downloadBytes += evaluation.bytes.count
            progress(index + 1, batches.count)

            do throws(SIMDClient.ClientError) {
                let (batchScores, batchBudget) = try client.decrypt(download: evaluation.bytes, imageCount: batch.count)
                scores += batchScores
                budget = min(budget, batchBudget)
            } catch { throw .client(error) }
            decryptSeconds += clock.lap()
        }
        return Outcome(scores: scores, budgetBits: budget, keySeconds: keySeconds, encryptSeconds: encryptSeconds,
                       decryptSeconds: decryptSeconds, evaluationSeconds: evaluationSeconds, serverSetupSeconds: serverSetupSeconds,
                       stepSeconds: stepSeconds, uploadBytes: uploadBytes, downloadBytes: downloadBytes,
                       evaluationKeyBytes: keyBytes.count)
    }
}

/// Wall-clock laps.
struct Stopwatch {
    private var last = DispatchTime.now().uptimeNanoseconds

    /// Seconds since the previous lap (or the start).
    @discardableResult
    mutating func lap() -> Double {
        let now = DispatchTime.now().uptimeNanoseconds
        defer { last = now }
        return Double(now - last) / 1e9
    }
}
